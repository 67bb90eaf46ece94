#!/usr/bin/env python3
"""Turns a fresh copy of the labs template into a new service.

cargo-generate copies the template and then runs `template/hook.rhai`, which writes the answers
to `template/answers` (one `key=value` a line) and runs this script in the new project's root.
It does what Liquid placeholders cannot do in a tree that must also build as it is:

1. Options. Lines between `template:begin FEATURE` and `template:end FEATURE` markers (in
   whatever comment syntax the file uses) are dropped when FEATURE is off, and so is a line
   ending with a `template:only FEATURE` comment; the markers themselves always go. Lines in a
   `not-FEATURE` region replace FEATURE's: commented out with `#` here, they are uncommented
   when FEATURE is off. `FEATURE_PATHS` lists the files that go with a feature.
2. The name. Every `labs` becomes the new name in the form its place needs: `LABS` the
   environment prefix, `Labs` UpperCamelCase, `labs` inside an identifier (`labs_db`,
   `labs::`) snake_case, and any other `labs` (binary, image, chart, database, prose) the
   kebab-case project name. File and directory names follow the same rules.
3. The default root path (`/api`), where it stands alone as a path.
4. The TypeScript SDK (clients/typescript) is regenerated from the new service's
   docs/openapi.json, with the service's own pinned generator (scripts/client.sh).
5. The answers are kept in `.template-values.toml`, so that `scripts/template-sync.sh` can
   regenerate the template later and merge its improvements (README, "Start a new service").

Only the standard library: it runs before anything of the new project is built.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

# Files that leave with an option switched off (relative to the project root, globs allowed).
FEATURE_PATHS = {
    "stripe": [
        "crates/labs_billing",
        "crates/labs/tests/process/payments.rs",
        "crates/labs_bench/src/bin/bench-webhooks.rs",
        "migrations/*_billing.sql",
        "docs/PAYMENTS.md",
        "scripts/fake-stripe.py",
        "scripts/stripe",
        # Its parts of the platform's scripts, each sourced by its script only when present.
        ".ci/containers.d/stripe.sh",
        "bench/http.d/stripe.sh",
        "scripts/fuzz-api.d/stripe.sh",
    ],
    # The template's own machinery: never part of a generated project.
    "upstream": [
        "cargo-generate.toml",
        ".ci/generate.sh",
    ],
}

# Tables created by the billing migration: offline query data that names them goes with it.
STRIPE_TABLES = ("stripe_customers", "stripe_events", "subscriptions", "invoices", "payments")

MARKER = re.compile(r"template:(begin|end) ([a-z-]+)")
# One line that goes with a feature: `text <!-- template:only stripe -->` (or `#`, `//`).
ONLY = re.compile(r"[ \t]*(?:<!--|#|//)[ \t]*template:only ([a-z-]+)[ \t]*(?:-->)?")
SKIP_DIRS = {".git", "target", "node_modules", "template"}


def main() -> None:
    root = Path.cwd()
    answers = read_answers(root / "template" / "answers")
    name = answers["project-name"]
    if not re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", name) or name == "labs":
        sys.exit(f"apply.py: the project name must be kebab-case and not `labs`: {name!r}")
    snake = name.replace("-", "_")
    env = answers.get("env_prefix") or snake.upper()
    if not re.fullmatch(r"[A-Z][A-Z0-9_]*", env):
        sys.exit(f"apply.py: the environment prefix must be SHOUTY_SNAKE_CASE: {env!r}")
    root_path = answers.get("root_path") or "/api"
    if not re.fullmatch(r"(/[a-z0-9][a-z0-9._-]*)+", root_path):
        sys.exit(f"apply.py: the root path must look like /api or /v1/orders: {root_path!r}")
    features = {"stripe": answers.get("stripe", "true") == "true", "upstream": False}
    features.update({f"not-{name}": not on for name, on in list(features.items())})

    for feature, on in features.items():
        if not on:
            for pattern in FEATURE_PATHS.get(feature, []):
                for path in root.glob(pattern):
                    remove(path)
    if not features["stripe"]:
        drop_stripe_data(root)

    # Before the renaming, which it takes part in like every other file.
    shutil.copy2(root / "template" / "sync.sh", root / "scripts" / "template-sync.sh")

    author = answers.get("author") or answers.get("authors") or f"The {name} authors"
    if re.search(r'["\\\n]', author):
        sys.exit(f"apply.py: the author may not hold quotes or backslashes: {author!r}")
    rules = renaming_rules(name, snake, env, author)
    for path, text in text_files(root):
        new = apply_rules(rename_root_path(keep_features(text, features, path), root_path), rules)
        if new != text:
            path.write_text(new, encoding="utf-8")
    rename_paths(root, rules)

    (root / ".template-values.toml").write_text(values_file(answers), encoding="utf-8")
    remove(root / "template")
    finish_with_cargo(root)
    finish_with_node(root)


def read_answers(path: Path) -> dict:
    answers = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            key, _, value = line.partition("=")
            answers[key.strip()] = value.strip()
    return answers


def values_file(answers: dict) -> str:
    """The answers in cargo-generate's `--template-values-file` format."""
    lines = [
        "# The answers this service was generated with from its template;",
        "# scripts/template-sync.sh regenerates the template with them. Keep it.",
        "[values]",
    ]
    for key in ("project-name", "env_prefix", "root_path", "author", "stripe"):
        value = answers.get(key, "")
        lines.append(f"{key} = {value}" if key == "stripe" else f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def text_files(root: Path):
    """(path, contents) of every UTF-8 file, outside build output and the template's own folder."""
    for path in sorted(root.rglob("*")):
        if path.is_file() and not SKIP_DIRS.intersection(path.relative_to(root).parts[:-1]):
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            yield path, text


def keep_features(text: str, features: dict, path: Path) -> str:
    """Drops the regions of switched-off features, and every marker line."""
    if "template:" not in text:
        return text
    out, region, dropping = [], None, False
    for number, line in enumerate(text.splitlines(keepends=True), 1):
        only = ONLY.search(line)
        if only:
            if only.group(1) not in features:
                sys.exit(f"apply.py: {path}:{number}: unknown feature `{only.group(1)}`")
            if not dropping and features[only.group(1)]:
                out.append(line[: only.start()] + line[only.end() :])
            continue
        marker = MARKER.search(line)
        if marker is None:
            if not dropping:
                # A `not-FEATURE` region holds the lines that replace FEATURE's, commented
                # out with `#` so that this repository does not run them.
                if region is not None and region.startswith("not-"):
                    line = re.sub(r"^(\s*)# ?", r"\1", line, count=1)
                out.append(line)
            continue
        kind, feature = marker.groups()
        if feature not in features:
            sys.exit(f"apply.py: {path}:{number}: unknown feature `{feature}`")
        if kind == "begin":
            if region is not None:
                sys.exit(f"apply.py: {path}:{number}: regions do not nest")
            region, dropping = feature, not features[feature]
        else:
            if region != feature:
                sys.exit(f"apply.py: {path}:{number}: `end {feature}` without its begin")
            region, dropping = None, False
    if region is not None:
        sys.exit(f"apply.py: {path}: region `{region}` is not closed")
    return "".join(out)


def rename_root_path(text: str, root_path: str) -> str:
    """`/api` where it is a whole path segment at the start of a path: after a host or a
    port (`$port/api`), a quote, a space or `=`; not `tests/api.rs` nor `//api.stripe.com`."""
    if root_path == "/api":
        return text
    return re.sub(r"(?<![/.-])(?<=[\w\"'`(\s=:}])/api(?=[/\"'`)\s,;]|$)", root_path, text, flags=re.M)


def renaming_rules(kebab: str, snake: str, env: str, author: str):
    camel = "".join(part.capitalize() for part in kebab.split("-"))
    return [
        (re.compile(r"The labs authors"), author),
        # Cargo names the variable after the binary, which is the kebab-case name.
        (re.compile(r"CARGO_BIN_EXE_labs\b"), f"CARGO_BIN_EXE_{kebab}"),
        (re.compile(r"LABS"), env),
        (re.compile(r"Labs"), camel),
        # Markdown anchors of headings such as `### LabsNotReady`.
        (re.compile(r"(?<=#)labs(?=[a-z])"), camel.lower()),
        # Inside an identifier or a Rust path: labs_db, run_labs, labs::settings.
        (re.compile(r"(?<=_)labs(?![A-Za-z0-9])|(?<![A-Za-z0-9])labs(?=_|::)"), snake),
        (re.compile(r"(?<![A-Za-z0-9])labs(?![A-Za-z0-9])"), kebab),
    ]


def apply_rules(text: str, rules) -> str:
    for pattern, replacement in rules:
        text = pattern.sub(replacement.replace("\\", "\\\\"), text)
    return text


def rename_paths(root: Path, rules) -> None:
    # Deepest first, so that a directory is renamed after what it holds.
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if SKIP_DIRS.intersection(path.relative_to(root).parts):
            continue
        new_name = apply_rules(path.name, rules)
        if new_name != path.name:
            path.rename(path.with_name(new_name))


def drop_stripe_data(root: Path) -> None:
    """The offline query data and OpenAPI paths of the billing code."""
    for query in (root / ".sqlx").glob("query-*.json"):
        sql = json.loads(query.read_text(encoding="utf-8"))["query"]
        if any(re.search(rf"\b{table}\b", sql) for table in STRIPE_TABLES):
            query.unlink()
    openapi_path = root / "docs" / "openapi.json"
    openapi = json.loads(openapi_path.read_text(encoding="utf-8"))
    openapi["paths"] = {
        path: item
        for path, item in openapi["paths"].items()
        if not any("billing" in op.get("tags", []) for op in item.values() if isinstance(op, dict))
    }
    openapi["tags"] = [tag for tag in openapi.get("tags", []) if tag["name"] != "billing"]
    prune_schemas(openapi)
    openapi_path.write_text(json.dumps(openapi, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def prune_schemas(openapi: dict) -> None:
    """Removes the component schemas that nothing outside them reaches any more."""
    components = openapi.get("components", {})
    schemas = components.get("schemas", {})
    roots = {key: value for key, value in openapi.items() if key != "components"}
    roots.update({key: value for key, value in components.items() if key != "schemas"})
    reached, frontier = set(), [roots]
    while frontier:
        found = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(frontier.pop())))
        for name in found - reached:
            reached.add(name)
            frontier.append(schemas.get(name, {}))
    for name in list(schemas):
        if name not in reached:
            del schemas[name]


def finish_with_cargo(root: Path) -> None:
    """Cargo.lock follows the renamed and removed crates (no version changes), and rustfmt
    reflows what the new names made longer or sorted differently."""
    if shutil.which("cargo") is None:
        print("apply.py: no cargo here: run `cargo update --workspace` and `cargo fmt --all`", file=sys.stderr)
        return
    for command in (["cargo", "update", "--workspace", "--offline", "--quiet"], ["cargo", "fmt", "--all"]):
        result = subprocess.run(command, cwd=root, capture_output=True, text=True)
        if result.returncode != 0:
            print(f"apply.py: `{' '.join(command)}` failed: {result.stderr.strip()}", file=sys.stderr)


def finish_with_node(root: Path) -> None:
    """The TypeScript SDK regenerated from the service's own docs/openapi.json (scripts/client.sh,
    which `make client` runs), so that the service's `make check-client` finds it current.
    A generator, not the renaming, is what says which SDK a document has: without Stripe the
    document has no billing operations, and the SDK must lose them whole. The generator's
    installed modules go afterwards: a fresh project has none, as a fresh clone has none."""
    if shutil.which("npm") is None:
        print("apply.py: no npm here: run `make client` to regenerate clients/typescript/src/gen", file=sys.stderr)
        return
    result = subprocess.run([str(root / "scripts" / "client.sh")], cwd=root, capture_output=True, text=True)
    remove(root / "clients" / "typescript" / "node_modules")
    if result.returncode != 0:
        print(f"apply.py: scripts/client.sh failed: {result.stderr.strip()}", file=sys.stderr)
        print("apply.py: run `make client` to regenerate clients/typescript/src/gen", file=sys.stderr)


if __name__ == "__main__":
    main()
