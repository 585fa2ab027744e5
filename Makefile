# The two commands: `make dev` runs the whole system locally, `make test` runs every check.
.PHONY: dev test lint-template lambda bench

dev:
	@scripts/dev.sh

test:
	@scripts/test.sh

lint-template:
	@scripts/venv.sh && scripts/lint-template.sh

# Release builds of every Lambda function (target/lambda/<name>/bootstrap).
lambda:
	@scripts/lambda-build.sh

# The figures in BENCHMARKS.md.
bench:
	@scripts/bench.sh
