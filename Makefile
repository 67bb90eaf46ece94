# Everyday commands. CI (.ci/run) calls these same recipes.
# `make help` lists them.

# The maintenance database the tests create their per-test databases from.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres

.DEFAULT_GOAL := help
.PHONY: help dev services test test-rust fuzz-api lint fmt migrate db-revision dev-psql openapi sqlx-prepare sqlx-check

help: ## List the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

dev: ## Run every role against the local Postgres and Redis (creates and migrates the database)
	cargo run -- serve

services: ## Make sure the local Postgres and Redis are installed and running
	scripts/services.sh

test: services ## The whole test suite: Rust tests (unit, integration, real processes, SMTP), then API fuzzing
	DATABASE_URL=$(TEST_DATABASE_URL) LABS_TEST_PYTHON=$$(scripts/python-tools.sh) cargo test --workspace --locked
	LABS_TEST_DATABASE_URL=$(TEST_DATABASE_URL) scripts/fuzz-api.sh

test-rust: ## Only the Rust tests
	DATABASE_URL=$(TEST_DATABASE_URL) LABS_TEST_PYTHON=$$(scripts/python-tools.sh) cargo test --workspace --locked

fuzz-api: ## Only the schemathesis fuzzing of the API
	LABS_TEST_DATABASE_URL=$(TEST_DATABASE_URL) scripts/fuzz-api.sh

lint: ## Formatting and clippy, as CI runs them
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

fmt: ## Format the code
	cargo fmt --all

migrate: ## Apply pending migrations to the development database
	cargo run -- migrate

db-revision: ## Create a new migration: make db-revision name=add_users
	@test -n "$(name)" || (echo "usage: make db-revision name=what_it_does" && exit 1)
	@f=migrations/$$(date -u +%Y%m%d%H%M%S)_$(name).sql; printf -- '-- %s\n' "$(name)" > $$f; echo "created $$f"

dev-psql: ## psql into the development database
	psql postgres://postgres@127.0.0.1:5432/labs

openapi: ## Regenerate docs/openapi.json (the snapshot the tests compare against)
	cargo run -q -- openapi > docs/openapi.json

sqlx-prepare: ## Regenerate .sqlx/ (offline query data) after changing a query or a migration
	LABS_TEST_DATABASE_URL=$(TEST_DATABASE_URL) scripts/sqlx-prepare.sh

sqlx-check: ## Fail if .sqlx/ is out of date
	LABS_TEST_DATABASE_URL=$(TEST_DATABASE_URL) scripts/sqlx-prepare.sh --check
