"""The tree's own rules: no merge-conflict markers in any tracked file, the library never imports
the app, and nothing fiddles with sys.path (the project is installed, so everything imports)."""
import ast
import subprocess

from conftest import REPO_ROOT

APP_MODULES = {"avh_app", "datasets", "model", "ops", "train"}


def tracked_files():
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True)
    return [REPO_ROOT / name for name in listed.stdout.decode().split("\0") if name]


def test_no_tracked_file_holds_a_merge_conflict():
    conflicted = []
    for path in tracked_files():
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue  # binary files (images, data samples)
        conflicted += [f"{path.relative_to(REPO_ROOT)}:{n}" for n, line in enumerate(lines, 1)
                       if line.startswith(("<<<<<<< ", ">>>>>>> ")) or line == "<<<<<<<"]
    assert not conflicted, f"unresolved merge conflicts at {conflicted}"


def imports_of(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module.split(".")[0]


def test_the_library_never_imports_the_app():
    library = sorted((REPO_ROOT / "avh").rglob("*.py"))
    assert library
    offenders = {str(p.relative_to(REPO_ROOT)): sorted(set(imports_of(p)) & APP_MODULES)
                 for p in library}
    assert not {p: m for p, m in offenders.items() if m}


def test_nothing_edits_sys_path():
    sources = [p for p in tracked_files() if p.suffix == ".py"]
    assert not [str(p.relative_to(REPO_ROOT)) for p in sources
                if "sys.path.insert" in p.read_text(encoding="utf-8")
                and p.name != "test_repository.py"]
