"""The build configuration as scikit-build-core reads it (pyproject.toml): a wheel build never
reuses a build folder, only the editable development loop keeps one, quietly."""
from pathlib import Path

import pytest

read_settings = pytest.importorskip(
    "scikit_build_core.settings.skbuild_read_settings",
    reason="scikit-build-core reads the build settings")

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def settings(state, **config_settings):
    return read_settings.SettingsReader.from_file(
        PYPROJECT, config_settings, state=state, env={}).settings


def test_a_wheel_builds_in_a_fresh_temporary_folder():
    # `pip install .`: an empty build-dir is a temporary folder, removed after the build, so
    # an old build of other sources or options can never be installed.
    assert settings("wheel").build_dir == ""


def test_the_editable_loop_keeps_its_build_folder_and_is_quiet():
    s = settings("editable")
    assert s.build_dir.startswith("build/")
    assert s.editable.rebuild is False       # no cmake run in every process that imports
    assert s.editable.verbose is False


def test_a_build_dir_given_on_the_command_line_wins():
    # .ci/sanitize builds each sanitizer kind into its own folder this way.
    assert settings("wheel", **{"build-dir": "/tmp/x"}).build_dir == "/tmp/x"
    assert settings("editable", **{"build-dir": "/tmp/x"}).build_dir == "/tmp/x"
