# The README's two commands. Each first brings the project's virtual environment up to date
# (tools/bootstrap: idempotent, a no-op when nothing changed).
VENV := .venv

.PHONY: run test
run:
	@tools/bootstrap >/dev/null
	$(VENV)/bin/singlink sweep

test:
	@tools/bootstrap >/dev/null
	$(VENV)/bin/python -m pytest
