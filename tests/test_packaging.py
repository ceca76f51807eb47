"""Packaging: every module folder is a regular package, so a built wheel (not only an editable
install) contains it."""

from pathlib import Path

import agecompact

ROOT = Path(agecompact.__file__).parent


def test_every_module_folder_is_a_package():
    folders = {p.parent for p in ROOT.rglob("*.py")}
    missing = sorted(str(f.relative_to(ROOT.parent)) for f in folders if not (f / "__init__.py").is_file())
    assert not missing, f"folders without __init__.py (left out of wheels): {missing}"


def test_training_entry_point_is_exported():
    from agecompact.training import train_and_evaluate
    from agecompact.training.loop import train_and_evaluate as direct

    assert train_and_evaluate is direct
