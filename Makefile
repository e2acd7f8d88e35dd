# The README's two commands. Each first brings the project's virtual environment up to date
# (tools/bootstrap: idempotent, a no-op when nothing changed).
VENV := .venv
# The Sionna 2 (PyTorch) phy backend's environment and the tests run on that backend.
VENV_SIONNA2 := .venv-sionna2
TORCH_TESTS := tests/test_phy_backend.py tests/test_phy_torch.py tests/test_receiver.py tests/test_sing_zero.py \
	tests/test_inn.py tests/test_metrics.py tests/test_baselines.py

.PHONY: run test test-sionna2
run:
	@tools/bootstrap >/dev/null
	$(VENV)/bin/singlink sweep

# The whole suite: on the default sionna-tf backend in .venv, then the phy, sweep and receiver tests
# on the sionna-torch backend in .venv-sionna2 (issue 31: CI runs both).
test:
	@tools/bootstrap >/dev/null
	$(VENV)/bin/python -m pytest
	@$(MAKE) --no-print-directory test-sionna2

test-sionna2:
	@tools/bootstrap --sionna2 >/dev/null
	SINGLINK_PHY=sionna-torch $(VENV_SIONNA2)/bin/python -m pytest $(TORCH_TESTS)
