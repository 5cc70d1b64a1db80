"""charter.session: the one way commands open constitution, engines and run folder."""

from __future__ import annotations

import json

import pytest
import yaml

from charter.errors import StoreError
from charter.session import open_session


def test_one_engine_per_spec_identity_in_the_folder_and_everything_closed(tmp_path):
    with open_session(None, {"policy": "llamacpp:embedded", "feedback": "llamacpp:embedded", "student": None},
                      tmp_path / "run") as session:
        assert session.engines["policy"] is session.engines["feedback"] and "student" not in session.engines
        engine = session.engines["policy"]
        assert session.folder == tmp_path / "run"
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["engines"] == {"policy": engine.fingerprint, "feedback": engine.fingerprint}
    assert manifest["constitution_hash"] == session.constitution.content_hash()
    assert engine._llm is None  # closed with the session


def test_another_run_is_refused_and_new_run_moves_beside_it(tmp_path, example_constitution_path):
    data = yaml.safe_load(example_constitution_path.read_text(encoding="utf-8"))
    data["version"] = "9.9"
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(data), encoding="utf-8")
    with open_session(None, {}, tmp_path / "run"):
        pass
    with pytest.raises(StoreError, match="different constitution.*--new-run"):
        with open_session(other, {}, tmp_path / "run"):
            pass
    with open_session(other, {}, tmp_path / "run", new_run=True) as moved:
        assert moved.folder == tmp_path / "run-2"
    with open_session(other, {}, tmp_path / "run", new_run=True) as again:  # the same command resumes it
        assert again.folder == tmp_path / "run-2"
    with open_session(None, {}, None) as bare:
        assert bare.store is None and bare.folder is None
