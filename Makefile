# Everyday commands. CI (.ci/run) calls these same recipes.
# `make help` lists them.

# The maintenance database the tests create their per-test databases from.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres

.DEFAULT_GOAL := help
.PHONY: help dev services test test-rust fuzz-api client check-client sdk-e2e lint lint-openapi fmt migrate db-migrate db-revision dev-psql dev-shell openapi sqlx-prepare sqlx-check image-build image-publish compose-up compose-down ci-containers

help: ## List the commands
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

dev: ## Run every role against the local Postgres and Redis (creates and migrates the database)
	cargo run -- serve

services: ## Make sure the local Postgres and Redis are installed and running
	scripts/services.sh

test: services ## The whole test suite: Rust tests (unit, integration, real processes, SMTP, a browser), API fuzzing, the TypeScript SDK
	scripts/node-tools.sh
	DATABASE_URL=$(TEST_DATABASE_URL) LABS_TEST_PYTHON=$$(scripts/python-tools.sh) cargo test --workspace --locked
	LABS_TEST_DATABASE_URL=$(TEST_DATABASE_URL) scripts/fuzz-api.sh
	$(MAKE) --no-print-directory check-client
	$(MAKE) --no-print-directory sdk-e2e
	$$(scripts/python-tools.sh) scripts/check-observability.py
	$(MAKE) --no-print-directory lint-openapi

test-rust: ## Only the Rust tests
	scripts/node-tools.sh
	DATABASE_URL=$(TEST_DATABASE_URL) LABS_TEST_PYTHON=$$(scripts/python-tools.sh) cargo test --workspace --locked

fuzz-api: ## Only the schemathesis fuzzing of the API
	LABS_TEST_DATABASE_URL=$(TEST_DATABASE_URL) scripts/fuzz-api.sh

client: ## Regenerate the TypeScript SDK (clients/typescript/src/gen) from docs/openapi.json
	scripts/client.sh

check-client: ## Fail if clients/typescript/src/gen is not what docs/openapi.json generates; tsc --strict over the SDK
	scripts/client.sh --check

sdk-e2e: ## The TypeScript SDK against a live server: signup, confirm by email, login, me, refresh, TOTP, logout
	LABS_TEST_DATABASE_URL=$(TEST_DATABASE_URL) scripts/sdk-e2e.sh

lint-openapi: ## Redocly's recommended rules on docs/openapi.json (any error fails), and a hey-api SDK with no `unknown` type
	scripts/node-tools.sh
	REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
	  scripts/openapi-tools/node_modules/.bin/redocly lint --config redocly.yaml docs/openapi.json
	scripts/check-sdk-types.sh

lint: ## Formatting and clippy, as CI runs them
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

fmt: ## Format the code
	cargo fmt --all

migrate: ## Apply pending migrations to the development database
	cargo run -- migrate

db-migrate: migrate ## The original template's name for `migrate`

db-revision: ## Create a new migration: make db-revision name=add_users
	@test -n "$(name)" || (echo "usage: make db-revision name=what_it_does" && exit 1)
	@f=migrations/$$(date -u +%Y%m%d%H%M%S)_$(name).sql; printf -- '-- %s\n' "$(name)" > $$f; echo "created $$f"

new-feature: ## A new feature crate, wired in and tested: make new-feature name=orders [singular=order] (docs/ADDING-A-FEATURE.md)
	@test -n "$(name)" || (echo "usage: make new-feature name=orders [singular=order]" && exit 1)
	scripts/new-feature.sh $(name) $(singular)

dev-psql: ## psql into the development database
	psql postgres://postgres@127.0.0.1:5432/labs

dev-shell: ## A shell in the running api container of the compose stack
	docker compose exec api bash

IMAGE ?= labs
TAG ?= $(shell git rev-parse --short HEAD)

image-build: ## Build the production image: make image-build IMAGE=registry.example.com/labs TAG=1.2.3
	docker build -f Dockerfile.prod -t $(IMAGE):$(TAG) --build-arg VERSION=$(TAG) --build-arg REVISION=$$(git rev-parse HEAD) .

image-publish: image-build ## Push the production image to its registry
	docker push $(IMAGE):$(TAG)

compose-up: ## The whole development stack (proxy on http://localhost:8000/api/docs)
	docker compose up --build -d

compose-down: ## Stop the development stack (volumes kept; add -v to docker compose down to drop them)
	docker compose down

ci-containers: ## The container checks CI runs: images, compose files, Helm chart
	.ci/containers.sh

openapi: ## Regenerate docs/openapi.json (the snapshot the tests compare against), then the TypeScript SDK from it
	cargo run -q -- openapi > docs/openapi.json
	scripts/client.sh

sqlx-prepare: ## Regenerate .sqlx/ (offline query data) after changing a query or a migration
	LABS_TEST_DATABASE_URL=$(TEST_DATABASE_URL) scripts/sqlx-prepare.sh

sqlx-check: ## Fail if .sqlx/ is out of date
	LABS_TEST_DATABASE_URL=$(TEST_DATABASE_URL) scripts/sqlx-prepare.sh --check
