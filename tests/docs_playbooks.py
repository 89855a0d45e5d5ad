"""The docs site's playbooks page (docs/docsite/rst/playbooks.rst), generated from playbooks/ itself.

    python tests/docs_playbooks.py --write   rewrite the page from the playbooks
    python tests/docs_playbooks.py --check   fail when the page is not what the playbooks give (make docs)

Playbooks have no antsibull-docs plugin type, so nothing documents them on the site but this page. It holds no
prose of its own beyond the headings: each playbook's header comment (what it does, its usage lines, its inputs),
its plays and tasks (with links to the roles and modules they run), and the variables it reads with their defaults
(``VAR | default(...)`` in its plays and in the variables it passes to roles, and its play ``vars:``), classified by
what reads them. Variables that are options of a role it runs link to that role's reference instead. The page is
checked in so that the collection's docs/docsite/ is complete in the tarball too; ``--check`` keeps it current.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PLAYBOOKS = ROOT / "playbooks"
PAGE = ROOT / "docs/docsite/rst/playbooks.rst"
COLLECTION = "kubeops.daemonset"
LABEL = f"ansible_collections.{COLLECTION}.docsite.playbooks"
PLAY_KEYWORDS = ("hosts", "serial", "max_fail_percentage")
ROLE_TASKS = ("ansible.builtin.include_role", "ansible.builtin.import_role")
DEFAULT = re.compile(r"\b([a-z_][a-z0-9_]*) \| default\(((?:[^()]|\([^()]*\))*)\)")
# snake_case names (with a trailing * for a family, or =value) in the header comments
NAME = re.compile(r"(?<![\w`*])([a-z][a-z0-9]*(?:(?:_[a-z0-9]+)+(?:_\*)?|_\*))(=[^\s),;]+)?", re.IGNORECASE)


def role_options() -> dict[str, str]:
    """Every option of the collection's roles (main entry point) -> its role."""
    options = {}
    for spec in sorted((ROOT / "roles").glob("*/meta/argument_specs.yml")):
        main = yaml.safe_load(spec.read_text())["argument_specs"]["main"]
        options.update(dict.fromkeys(main.get("options", {}), spec.parents[1].name))
    return options


def literal(text: str) -> str:
    return f"``{text}``" if text else '``""``'


def scalar(value: Any) -> str:
    """A play variable's value as YAML would show it."""
    return value if isinstance(value, str) else json.dumps(value)


def default_text(arguments: str) -> str:
    """default()'s first argument as a user would write it on the command line ('x' -> x)."""
    first = arguments.split(",")[0].strip()
    if len(first) >= 2 and first[0] == first[-1] and first[0] in "'\"":
        return first[1:-1]
    return first


def header(text: str) -> list[str]:
    """The playbook's leading comment, without the '# '."""
    lines = []
    for line in text.splitlines():
        if line.strip() == "---":
            continue
        if not line.startswith("#"):
            break
        lines.append(line[2:] if line.startswith("# ") else line[1:])
    return lines


def inline(text: str, options: dict[str, str]) -> str:
    """Comment prose as RST: `code` becomes a literal, a role option a link to it, other snake_case names literals."""
    parts = re.split(r"(`[^`]+`)", text)
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(literal(part[1:-1]))
            continue

        def name(match: re.Match[str]) -> str:
            word, value = match.group(1), match.group(2) or ""
            if word in options:
                return f":ansopt:`{COLLECTION}.{options[word]}#role:main:{word}{value}`"
            return literal(word + value)

        out.append(NAME.sub(name, part))
    return "".join(out)


def render_header(lines: list[str], options: dict[str, str]) -> list[str]:
    """Prose lines become paragraphs, indented 'ansible-playbook' lines (with their \\ continuations) a shell block,
    other indented lines starting 'N.' an enumerated list (deeper lines continue the item)."""
    blocks: list[tuple[str, list[str]]] = []
    for line in lines:
        stripped = line.strip()
        indented = line.startswith("  ")
        kind, items = blocks[-1] if blocks else ("", [])
        if indented and (stripped.startswith("ansible-playbook") or (kind == "shell" and items[-1].endswith("\\"))):
            if kind == "shell":
                items.append(line[2:].rstrip())
            else:
                blocks.append(("shell", [line[2:].rstrip()]))
        elif indented and re.match(r"\d+\. ", stripped):
            if kind == "list":
                items.append(stripped)
            else:
                blocks.append(("list", [stripped]))
        elif indented and kind == "list":
            items[-1] += " " + stripped
        elif stripped:
            if kind == "prose":
                items[-1] += " " + stripped
            else:
                blocks.append(("prose", [stripped]))
    out: list[str] = []
    for kind, items in blocks:
        if kind == "shell":
            out += [".. code-block:: shell", "", *(f"    {item}" for item in items)]
        elif kind == "list":
            for item in items:
                number, rest = item.split(" ", 1)
                out.append(f"{number} {inline(rest, options)}")
        else:
            out.append(inline(items[0], options))
        out.append("")
    return out


@dataclass
class Variable:
    name: str
    default: str
    used_as: list[str] = field(default_factory=list)


def variables(playbook: list[dict[str, Any]], options: dict[str, str], roles: set[str]) -> dict[str, Variable]:
    """The variables a playbook reads with a default: in its play keywords, its play vars, the vars it gives roles."""
    found: dict[str, Variable] = {}

    def read(expression: Any, used_as: str) -> None:
        for match in DEFAULT.finditer(str(expression)):
            name = match.group(1)
            if options.get(name) in roles:  # the role's own option: its page documents it
                continue
            variable = found.setdefault(name, Variable(name, default_text(match.group(2))))
            if used_as not in variable.used_as:
                variable.used_as.append(used_as)

    for play in playbook:
        for keyword in PLAY_KEYWORDS:
            if keyword in play:
                read(play[keyword], f"the play's ``{keyword}``")
        for name, value in (play.get("vars") or {}).items():
            found.setdefault(name, Variable(name, scalar(value)))
        for task in play.get("tasks") or []:
            role_task = any(key in task for key in ROLE_TASKS)
            for task_var, expression in (task.get("vars") or {}).items():
                # a role task's vars are the role's variables; another task's are its own helpers
                reader = literal(task_var) if role_task else f"the {used(task)} task"
                read(expression, reader)
                for name in re.findall(r"\b([a-z_][a-z0-9_]*)\b", str(expression)):
                    if name in found and reader not in found[name].used_as:
                        found[name].used_as.append(reader)
            if "when" in task:
                condition = f"the task's ``when: {task['when']}``"
                for name in re.findall(r"\b([a-z_][a-z0-9_]*)\b", str(task["when"])):
                    if name in found and condition not in found[name].used_as:
                        found[name].used_as.append(condition)
    return found


def table(rows: list[Variable]) -> list[str]:
    out = [".. list-table::", "  :header-rows: 1", "", "  * - variable", "    - default", "    - read as"]
    for row in rows:
        out += [
            f"  * - {literal(row.name)}",
            f"    - {literal(row.default)}",
            f"    - {', '.join(row.used_as) or '(not read)'}",
        ]
    return [*out, ""]


def used(task: dict[str, Any]) -> str:
    for key in ROLE_TASKS:
        if key in task:
            return f":ansplugin:`{task[key]['name']}#role`"
    for key in task:
        if key.startswith(f"{COLLECTION}."):
            return f":ansplugin:`{key}#module`"
        if "." in key:
            return literal(key)
    return ""


def task_line(task: dict[str, Any], options: dict[str, str]) -> str:
    name = re.sub(r"^(\d+)\.", r"\1\\.", inline(task.get("name", "(unnamed)"), options))
    what = used(task)
    when = f" (when {literal(str(task['when']))})" if "when" in task else ""
    return f"- {name}: {what}{when}" if what else f"- {name}{when}"


def connection_section() -> list[str]:
    path = PLAYBOOKS / "vars/connection.yml"
    text = path.read_text()
    out = ["Connection", "----------", ""]
    out += render_header(header(text), role_options())
    out += [
        f"Every playbook reads ``{path.relative_to(PLAYBOOKS)}`` and passes ``kubeops_connection`` as "
        "``module_defaults`` for ``group/kubeops.daemonset.all``:",
        "",
        ".. list-table::",
        "  :header-rows: 1",
        "",
        "  * - host variable",
        "    - connection option",
    ]
    for option, expression in yaml.safe_load(text)["kubeops_connection"].items():
        for match in DEFAULT.finditer(expression):
            out += [f"  * - {literal(match.group(1))}", f"    - {literal(option)}"]
    return [*out, ""]


def roles_run(plays: list[dict[str, Any]]) -> set[str]:
    """The collection's roles a playbook's tasks include or import (short names)."""
    return {
        task[key]["name"].split(".")[-1]
        for play in plays
        for task in play.get("tasks") or []
        for key in ROLE_TASKS
        if key in task
    }


def render() -> str:
    options = role_options()
    books = {path.stem: path for path in sorted(PLAYBOOKS.glob("*.yml"))}
    parsed = {name: yaml.safe_load(path.read_text()) for name, path in books.items()}
    roles_of = {name: roles_run(plays) for name, plays in parsed.items()}
    found = {name: variables(plays, options, roles_of[name]) for name, plays in parsed.items()}
    common = set.intersection(*(set(found[name]) for name in found))
    first = next(iter(found.values()))
    out = [
        "..",
        "  Generated from playbooks/ by tests/docs_playbooks.py --write: edit the playbooks, not this page.",
        "",
        f".. _{LABEL}:",
        "",
        "Playbooks",
        "=========",
        "",
        "Run one with ``ansible-playbook kubeops.daemonset.NAME`` and its inputs as extra variables (``-e``).",
        "What each playbook says of itself, the roles and modules it runs and the variables it reads, all taken",
        "from ``playbooks/``.",
        "",
        ".. contents::",
        "  :local:",
        "  :depth: 1",
        "",
        "Variables of every playbook",
        "---------------------------",
        "",
        *table(
            [
                Variable(name, first[name].default, sorted({u for book in found.values() for u in book[name].used_as}))
                for name in sorted(common)
            ]
        ),
        *connection_section(),
    ]
    for name, plays in parsed.items():
        title = f"{COLLECTION}.{name}"
        out += [f".. _{LABEL}.{name}:", "", title, "-" * len(title), ""]
        out += render_header(header(books[name].read_text()), options)
        for play in plays:
            out += [
                f"Play: {play.get('name', '(unnamed)')}",
                "",
                *(task_line(t, options) for t in play.get("tasks") or []),
                "",
            ]
        roles = sorted(roles_of[name])
        if roles:
            links = ", ".join(f":ansplugin:`{COLLECTION}.{role}#role`" for role in roles)
            out += [f"Options of the roles it runs ({links}) are its inputs too.", ""]
        own = [variable for variable_name, variable in found[name].items() if variable_name not in common]
        if own:
            out += ["Its own variables:", "", *table(own)]
    return "\n".join(out).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite docs/docsite/rst/playbooks.rst")
    mode.add_argument("--check", action="store_true", help="fail when the page is not current")
    args = parser.parse_args()
    page = render()
    if args.write:
        PAGE.write_text(page)
        return 0
    current = PAGE.read_text() if PAGE.is_file() else ""
    if current != page:
        diff = difflib.unified_diff(current.splitlines(True), page.splitlines(True), str(PAGE), "generated")
        sys.stderr.write("".join(diff))
        sys.stderr.write(
            f"{PAGE.relative_to(ROOT)} is not what playbooks/ gives: python tests/docs_playbooks.py --write\n"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
