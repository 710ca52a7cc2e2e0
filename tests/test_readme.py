"""README starts with the two commands; CI runs the second one verbatim."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text(), flags=re.S)


def test_readme_opens_with_setup_and_test_commands():
    start, test = readme_commands()[:2]
    assert "pip install" in start and start.endswith("streamlit run app.py")
    assert "pip install" in test and "pytest" in test


CI_GATES = [".venv/bin/ruff check .", ".venv/bin/mypy"]


def ci_commands() -> list[str]:
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    return [line for line in lines if line and not line.startswith(("#", "set ", "cd "))]


def test_ci_runs_the_readme_test_command_last():
    assert ci_commands()[-1] == readme_commands()[1]


def test_ci_runs_lint_and_types_before_the_tests():
    commands = ci_commands()
    gate_positions = [commands.index(gate) for gate in CI_GATES]
    assert gate_positions == sorted(gate_positions)
    assert max(gate_positions) < len(commands) - 1
