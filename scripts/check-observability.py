"""Checks the monitoring files against the code and the runbook:
- every alert rule in deploy/prometheus/alerts.yaml has a runbook entry in docs/OPERATIONS.md;
- every labs_* metric used by an alert or a dashboard panel is one the code emits.
Run by `make test`.
"""

import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
failures = []

rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yaml").read_text())
alerts = [rule for group in rules["groups"] for rule in group["rules"]]
runbook = (ROOT / "docs/OPERATIONS.md").read_text()
expressions = [rule["expr"] for rule in alerts]

for rule in alerts:
    if f"### {rule['alert']}\n" not in runbook:
        failures.append(f"alert {rule['alert']} has no runbook entry in docs/OPERATIONS.md")
    for key in ("summary", "runbook_url"):
        if key not in rule.get("annotations", {}):
            failures.append(f"alert {rule['alert']} has no {key}")

dashboard = json.loads((ROOT / "deploy/grafana/labs.json").read_text())
expressions += [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]

source = "\n".join(path.read_text() for path in (ROOT / "crates").rglob("*.rs"))
emitted = set(re.findall(r'"(labs_[a-z_]+)"', source))
used = {re.sub(r"_(bucket|count|sum)$", "", name) for expr in expressions for name in re.findall(r"(?<![a-z_])labs_[a-z_]+", expr)}
for name in sorted(used - emitted):
    failures.append(f"{name} is used by an alert or a panel but no code emits it")

if failures:
    print("observability check FAILED:")
    for failure in failures:
        print(f"  - {failure}")
    sys.exit(1)
print(f"observability check passed: {len(alerts)} alerts with runbook entries, {len(used)} metrics all emitted")
