#!/usr/bin/env bash
# Takes the improvements of a newer version of the template this service was generated from,
# the way git merges two branches (README, "Taking template improvements").
#
# The `template` branch holds the generated project exactly as the template made it, never
# edited by hand. This script regenerates the template at the version you name, with this
# service's answers (.template-values.toml), commits the result on `template`, and merges
# `template` into the current branch. Your changes and the template's changes since the last
# sync meet like any two branches: what does not overlap merges by itself, a conflict is left
# for you to resolve and commit.
#
# usage: scripts/template-sync.sh TEMPLATE [REF]
#   TEMPLATE  a checkout of the template (a directory), or its git URL
#   REF       with a URL: the tag or branch to take (default: its default branch)
# Needs cargo-generate (`cargo install --locked cargo-generate`) and python3.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"

source=${1:?usage: scripts/template-sync.sh TEMPLATE [REF]}
ref=${2:-}
if ! git diff --quiet HEAD || [ -n "$(git ls-files --others --exclude-standard)" ]; then
  echo "template-sync: commit or stash your changes first" >&2
  exit 1
fi
if ! git rev-parse --verify -q refs/heads/template >/dev/null; then
  echo "template-sync: no \`template\` branch; create it at the commit that holds the project as generated (git branch template <that commit>)" >&2
  exit 1
fi
name=$(sed -n 's/^project-name = "\(.*\)"$/\1/p' .template-values.toml)

work=$(mktemp -d)
cleanup() {
  git worktree remove --force "$work/tree" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

if [ -d "$source" ]; then
  template=$(cd "$source" && pwd)
else
  git clone -q --depth 1 ${ref:+--branch "$ref"} "$source" "$work/source"
  template=$work/source
fi
cargo generate --path "$template" --name "$name" --destination "$work" \
  --template-values-file .template-values.toml --allow-commands --silent --vcs none >/dev/null

# The `template` branch becomes exactly the new output: files the template dropped go too.
git worktree add -q "$work/tree" template
git -C "$work/tree" rm -rq --ignore-unmatch .
cp -a "$work/$name/." "$work/tree/"
git -C "$work/tree" add -A
if git -C "$work/tree" diff --cached --quiet; then
  echo "template-sync: the template has nothing new for this service"
  exit 0
fi
git -C "$work/tree" commit -q -m "Template: regenerated from $source${ref:+ at $ref}"
echo "template-sync: the template's changes are on branch \`template\`; merging them"
if ! git merge --no-edit template; then
  echo "template-sync: resolve the conflicts above, then \`git commit\`" >&2
  exit 1
fi
