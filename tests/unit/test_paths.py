"""Tests for the one path resolver, speechbrain_ext.data.paths."""

import os

import pytest

from speechbrain_ext.data.paths import resolve_path


def test_resolve_path_inside(tmp_path):
    root = str(tmp_path / "vox1")
    assert resolve_path("id1/a.wav", root) == os.path.join(root, "id1/a.wav")
    assert resolve_path("id1/x/../a.wav", root) == os.path.join(
        root, "id1/a.wav"
    )


@pytest.mark.parametrize(
    "path", ["../a.wav", "id1/../../a.wav", "../vox1_other/a.wav", "/etc/x"]
)
def test_resolve_path_refuses_escape(tmp_path, path):
    root = str(tmp_path / "vox1")
    with pytest.raises(ValueError, match="outside the data folder"):
        resolve_path(path, root)
    out = resolve_path(path, root, allow_outside=True)
    assert not out.startswith(root + os.sep)


def test_refused_path_hint_names_the_real_setting(tmp_path):
    # The hint names the hparam a user can set, not a Python argument.
    with pytest.raises(ValueError) as err:
        resolve_path("../a.wav", str(tmp_path / "vox1"), where="t.txt:3")
    assert "allow_paths_outside_data_folder" in str(err.value)
    assert "allow_outside=True" not in str(err.value)
