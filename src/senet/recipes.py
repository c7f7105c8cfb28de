"""Training recipes that ship inside the package, so ``--config NAME`` works from a plain ``pip install``.

A recipe is a YAML file of ``senet train`` (or ``senet compare``) options in ``senet/configs/``: ``demo`` (the main
job's comparison), ``se_vs_plain`` (the longer one), ``fmnist_se_fast``, ``fmnist_se_94`` and ``fmnist_se_hour``
(the time-to-accuracy recipes). A ``--config`` value that names an existing file is that file; a bare name (no
folder, ``.yaml`` optional) is looked up here.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def recipe_dir() -> Path:
    """The folder holding the bundled recipes (inside the installed package)."""
    return Path(str(resources.files("senet") / "configs"))


def bundled_recipes() -> dict[str, Path]:
    """Bundled recipe names mapped to their files, sorted by name."""
    return {p.stem: p for p in sorted(recipe_dir().glob("*.yaml"))}


def resolve_recipe(path: str | Path) -> Path:
    """``path`` if it is a file, else the bundled recipe it names; raises ``FileNotFoundError`` naming both options."""
    candidate = Path(path)
    if candidate.is_file():
        return candidate
    recipes = bundled_recipes()
    if candidate.parent == Path(".") and candidate.suffix in ("", ".yaml", ".yml"):
        found = recipes.get(candidate.stem)
        if found is not None:
            return found
    raise FileNotFoundError(f"no such config file: {path} (bundled recipes, by name: {', '.join(recipes)})")
