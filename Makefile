# bestie: every target that needs the environment depends on the install stamp, so on a fresh
# machine `make test` or `make voc-pipeline` alone does all set-up.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test test-fast bench mutate clean voc-pipeline quality quality-quick

# make voc-pipeline variables (see README): empty VOC_ROOT runs on the built-in demo data.
VOC_ROOT       ?=
# Any dataset (see README): DATA = a VOC root, a COCO instances JSON (+ IMAGES) or a folder with
# labels.csv; VAL_DATA / VAL_IMAGES = the dataset evaluate scores on (COCO: the val JSON).
DATA           ?=
DATA_FORMAT    ?=
IMAGES         ?=
VAL_DATA       ?=
VAL_IMAGES     ?=
LABELS         ?=
WORK           ?= work
SUP            ?= cls
POINTS_DIR     ?=
WSSS_DIR       ?=
DEVICE         ?= cpu
# Training choices; empty = the recipe DEVICE picks (cuda: the paper's settings, cpu: tiny
# networks and CPU budgets, on the demo or on VOC alike).
CLS_BACKBONE   ?=
BACKBONE       ?=
PAM_EPOCHS     ?=
FIT_ITERS      ?=
BATCH_SIZE     ?=
DEMO_IMAGES    ?= 240
PRETRAINED_CLS ?=
PRETRAINED_SEG ?=
PIPELINE = $(BIN)/bestie-labels pipeline --work '$(WORK)' --sup '$(SUP)' --device '$(DEVICE)' \
	--voc-root '$(VOC_ROOT)' --data '$(DATA)' --data-format '$(DATA_FORMAT)' --images '$(IMAGES)' \
	--val-data '$(VAL_DATA)' --val-images '$(VAL_IMAGES)' --labels '$(LABELS)' --points-dir '$(POINTS_DIR)' --wsss-dir '$(WSSS_DIR)' \
	--cls-backbone '$(CLS_BACKBONE)' --backbone '$(BACKBONE)' --pam-epochs '$(PAM_EPOCHS)' \
	--fit-iters '$(FIT_ITERS)' --batch-size '$(BATCH_SIZE)' --demo-images '$(DEMO_IMAGES)' --pretrained-cls '$(PRETRAINED_CLS)' --pretrained-seg '$(PRETRAINED_SEG)'

install: $(STAMP)

# torch is pinned and installed first: a bare `torch` requirement would pull the CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $@

test: $(STAMP)
	$(BIN)/python -m pytest tests

# The suite without the end-to-end tests marked `slow` (the demo pipeline, kills of model stages).
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -m "not slow"

# Mutation testing of the pure core (modules and tests in pyproject.toml [tool.mutmut]); not part
# of `make test`. All (about 4,300) mutants take over an hour on 2 cores: MUTANTS restricts the run to
# name patterns, e.g. MUTANTS='bestie_train.losses.* bestie_labels.store.merge.x_merge_stores*'.
MUTANTS ?=
DEV_STAMP := $(VENV)/.dev-installed

$(DEV_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[test,dev]'
	touch $@

mutate: $(DEV_STAMP)
	OMP_NUM_THREADS=1 $(BIN)/mutmut run --max-children 2 $(MUTANTS)
	@$(BIN)/mutmut results --all true | awk -F': ' '{n[$$2]++} END {for (s in n) print s, n[s]}'

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# The quality suite (issue 20): the CPU recipe on seven generated dataset families, 3 seeds each
# (hours on 2 cores); quality-quick (or QUICK=1) is one seed of smaller runs (about an hour).
# Cached under $(WORK)/quality[_quick]: an interrupted run resumes. QUALITY_ARGS adds options.
QUICK ?=
QUALITY_ARGS ?=
quality: $(STAMP)
	$(BIN)/python benchmarks/bench_quality.py --out '$(WORK)/quality$(if $(QUICK),_quick)' $(if $(QUICK),--quick) $(QUALITY_ARGS)

quality-quick: $(STAMP)
	$(BIN)/python benchmarks/bench_quality.py --out '$(WORK)/quality_quick' --quick $(QUALITY_ARGS)

# The stages and their options are defined once, in bestie_labels/pipeline/plan.py: this target writes
# them out as Make rules (one target per stage output) and lets Make decide what is out of date.
voc-pipeline: $(STAMP)
	@mkdir -p '$(WORK)'
	@$(PIPELINE) --emit-make '$(WORK)/pipeline.mk'
	@$(MAKE) --no-print-directory -f '$(WORK)/pipeline.mk' all
	@$(BIN)/bestie-labels summary --work '$(WORK)'

clean:
	rm -rf $(VENV) work mutants
