# Two commands do everything on a fresh machine: `make book` and `make test`.
# Each creates .venv if missing and installs the pinned packages first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PROFILE ?= cpu
# torch's CPU wheel: on the project's machines pip finds it on disk; elsewhere name PyTorch's CPU index,
# e.g. make test TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" (PyPI's is CUDA).
TORCH  ?= torch==2.13.0

.PHONY: book test bench venv clean student

venv: $(STAMP)

# torch first: the CPU wheel of 2.13.0 is on these machines; a range would pull CUDA builds.
$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -c constraints.txt -e ".[book,test,llm]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# Execute stale chapters at the cpu profile (nothing, when the committed ones are current),
# regenerate the scoreboard, then render. Warnings are errors.
book: $(STAMP)
	$(VENV)/bin/kdlib run --all --profile $(PROFILE) --jobs 2
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup --durations=20

bench: $(STAMP)
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_lm.py

# Student versions of every chapter (solutions removed) into _build/student/.
student: $(STAMP)
	$(VENV)/bin/kdlib student --all

clean:
	rm -rf _build _runs
