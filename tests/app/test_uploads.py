"""The CSV upload of the sidebar: a good file switches the config form to dataset="csv" with
the saved file; a bad file shows an error naming the problem and changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app import uploads
from ijr_core.config import RunConfig
from ijr_core.data import load_dataset

SCRIPT = """
from app import config_ui, uploads
uploads.csv_upload_sidebar()
config, error = config_ui.sidebar_config()
"""
GOOD = "x1,x2,label\n" + "".join(
    f"{i * 0.1:.2f},{(i * 7) % 5 - 2},{'ab'[i % 2]}\n" for i in range(40)
)


def _app() -> AppTest:
    at = AppTest.from_string(SCRIPT, default_timeout=60)
    at.run()
    assert not at.exception
    return at


def test_good_csv_switches_the_form(runs_dir):
    at = _app()
    at.file_uploader(key=uploads.CSV_KEY).set_value(("pts.csv", GOOD.encode(), "text/csv"))
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    state = at.session_state
    assert state["cfg_dataset"] == "csv"
    path = Path(state["cfg_data_path"])
    assert path.is_file() and runs_dir in path.parents and "_uploads" in path.parts
    assert (state["cfg_n_train"], state["cfg_n_test"]) == ("32", "8")
    config = RunConfig.from_dict(
        {"dataset": "csv", "data_path": str(path), "n_train": 32, "n_test": 8}
    )
    data = load_dataset(config)
    assert data.n_classes == 2 and data.X_train.shape == (32, 2)
    assert any("32 training / 8 test" in s.value for s in at.success)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"a,b,label\n1,2,x\n3,oops,y\n5,6,x\n7,8,y\n", "not a number"),
        (b"a,label\n1,x\n2,x\n3,x\n4,x\n", "fewer than 2 classes"),
        (b"\xff\xfe\x00garbage", "not a UTF-8 CSV"),
        (b"1,2\n", "rows"),
    ],
)
def test_bad_csv_shows_error(runs_dir, content, message):
    at = _app()
    before = at.session_state["cfg_dataset"]
    at.file_uploader(key=uploads.CSV_KEY).set_value(("bad.csv", content, "text/csv"))
    at.run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any(message in e for e in errors), errors
    assert at.session_state["cfg_dataset"] == before
    folder = runs_dir / "_uploads"
    assert not folder.exists() or not list(folder.rglob("*.csv"))  # a bad file is not kept


def test_csv_size_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(uploads, "MAX_CSV_MB", 0.001)
    with pytest.raises(ValueError, match="at most"):
        uploads.check_csv(GOOD.encode() * 10, tmp_path)


def test_upload_note_stays_visible_and_names_no_temp_path(runs_dir):
    """Regression: after a good upload the expander closed over its success note (the only
    sign the form now trains on the file); errors read "x.csv: the file: column …"."""
    at = _app()
    at.file_uploader(key=uploads.CSV_KEY).set_value(("pts.csv", GOOD.encode(), "text/csv"))
    at.run()
    box = next(e for e in at.sidebar.expander if e.label == "Your own data (CSV)")
    assert box.proto.expanded and any("32 training" in s.value for s in at.success)
    bad = b"a,b,label\n1,2,x\n3,oops,y\n5,6,x\n7,8,y\n"
    at.file_uploader(key=uploads.CSV_KEY).set_value(("bad.csv", bad, "text/csv"))
    at.run()
    errors = [e.value for e in at.error]
    assert errors and not any("the file:" in e for e in errors), errors


def test_upload_applies_clean_labels_and_the_files_name_and_says_so(runs_dir):
    at = _app()
    at.session_state["cfg_label_noise"] = "0.5"  # as the default preset has
    at.file_uploader(key=uploads.CSV_KEY).set_value(("my iris.csv", GOOD.encode(), "text/csv"))
    at.run()
    state = at.session_state
    assert state["cfg_label_noise"] == "0.0" and state["cfg_name"] == "my-iris"
    note = next(s.value for s in at.success if "32 training" in s.value)
    assert "label_noise = 0 (the preset had 0.5)" in note and "name = my-iris" in note


def test_share_link_of_an_uploaded_csv_holds_no_server_path(runs_dir):
    at = AppTest.from_string(SCRIPT + "\nconfig_ui.mirror_to_url(config)\n", default_timeout=60)
    at.run()
    at.file_uploader(key=uploads.CSV_KEY).set_value(("pts.csv", GOOD.encode(), "text/csv"))
    at.run()
    query = dict(at.query_params)
    assert query.get("dataset") == "csv" and at.session_state["cfg_data_path"]
    assert "data_path" not in query and not any(str(runs_dir) in str(v) for v in query.values())
