"""ijr_core: the math and trainers behind the IJR explorer (pure library: no UI imports)."""
