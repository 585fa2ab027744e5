# The two commands: `make dev` runs the whole system locally, `make test` runs every check.
.PHONY: dev test lint-template lambda bench cost

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

# Dollars per million messages and per session-month, from the counted AWS requests.
cost:
	@scripts/cost.sh
