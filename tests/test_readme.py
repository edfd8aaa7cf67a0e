"""The README's examples run exactly as the README shows them, pasted into a file: each logs its
layers' activations and gradients, read back from the event files it wrote."""
import re
import subprocess
import sys

import pytest

from conftest import REPO_ROOT
from runs import read_events

pytestmark = pytest.mark.slow  # each example is a Python process of its own

EXAMPLE = re.compile(r"<!-- example: (?P<name>[^>]*) -->\n```python\n(?P<code>.*?)```", re.S)


def readme_examples():
    return {m["name"]: m["code"] for m in EXAMPLE.finditer((REPO_ROOT / "README.md").read_text())}


def test_the_readme_has_its_examples():
    assert set(readme_examples()) == {"a Sequential model", "a subclassed model"}


@pytest.mark.parametrize("name, log_dir", [("a Sequential model", "logs/my-model"),
                                           ("a subclassed model", "logs/my-subclassed-model")])
def test_a_readme_example_runs_as_written_and_logs_forward_and_backward(tmp_path, name, log_dir):
    script = tmp_path / "example.py"
    script.write_text(readme_examples()[name])
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    events = read_events(tmp_path / log_dir)
    histograms = sorted(tag for tag in events if tag.startswith("activations/"))
    gradients = sorted(tag for tag in events if tag.startswith("gradients/"))
    assert histograms and [t.replace("activations/", "") for t in histograms] == \
        [t.replace("gradients/", "") for t in gradients]
    # 2 epochs of 32 (or 16) steps, every 10 steps: step 0, the multiples of 10 and the last.
    steps = [s for s, _ in events[histograms[0]]]
    assert steps[0] == 0 and steps[1] == 10 and steps == sorted(set(steps))
