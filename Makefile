# kdsurrogate: knowledge distillation without the teacher's data.
# `make demo` and `make test` set everything up first (via `make install`).

PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
FMNIST  := /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
SCALE   ?= 1
export PYTHONUNBUFFERED := 1

.PHONY: help install test lint demo student gpu-check pipeline shards teacher adversarial refined curated students scores sheets report bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/kdgen: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --no-compile torch==2.14.1 torchvision==0.29.1  # bytecode is written on first import
	$(BIN)/pip install --quiet -e '.[dev,photos,timm,digits]'
	touch $(BIN)/kdgen

$(FMNIST):
	@if command -v apt-get >/dev/null 2>&1; then \
	  (apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
	   (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist)) ; \
	else echo "note: no apt-get; kdtrain falls back to torchvision's Fashion-MNIST download"; fi

install: $(BIN)/kdgen $(FMNIST)  ## create .venv with everything, and Debian's Fashion-MNIST files

test: install  ## run the test suite
	$(BIN)/python -m pytest -q --durations=15

lint: install  ## ruff
	$(BIN)/ruff check kdgen kdtrain tests bench

demo: install  ## a Fashion-MNIST teacher, then `kdtrain student` on it beside the original-data student (about 8 min on 2 cores without bf16, install included)
	$(MAKE) --no-print-directory demo-student PROFILE=demo

# `make student`: one command from a teacher file to a deployable student (kdtrain student); BUDGET=N is Nx.
OUT ?= runs/student
student: install  ## TEACHER=file [EVAL=test data] [BUDGET=1|4|16] [OUT=runs/student]: teacher -> exported student
	@test -n "$(TEACHER)" || { echo "usage: make student TEACHER=path/to/teacher.pt [EVAL=fashion-mnist] [BUDGET=4]"; exit 2; }
	$(KDTRAIN) student --teacher $(TEACHER) --out $(OUT) --budget $(BUDGET)x $(if $(EVAL),--eval $(EVAL))

bench: install  ## benchmarks (figures go to docs/BENCHMARKS.md with the command behind each)
	$(BIN)/python bench/bench_generators.py $(BENCH_ARGS)
	$(BIN)/python bench/bench_shaders.py --cli $(BENCH_ARGS)
	$(BIN)/python bench/bench_train.py
	$(BIN)/python bench/bench_attack.py

gpu-check: install  ## on a CUDA machine: shaders, plain/attacked distillation, refine rates, one SCALE=16 student (~6 min)
	BIN=$(BIN) bench/gpu_check.sh

clean:  ## remove generated data and runs (keeps .venv)
	rm -rf data/*.tar data/*.json data/*.png runs

# ---- the pipeline: generate -> teacher -> attack/curate -> distil -> score -> report ----------------
# PROFILE=full (about 2 hours on 2 CPU cores) or demo (about 13 minutes); SCALE multiplies images and
# steps (e.g. SCALE=8 on a GPU). Each stage is a plain kdgen/kdtrain command, printed as it runs, and
# leaves a stamp file so that an interrupted pipeline continues where it stopped.
PROFILE ?= full
ifeq ($(PROFILE),tiny)  # the test suite's smoke run: seconds, numbers meaningless
  N_IMAGES   := 48
  N_ATTACK   := 16
  N_REFINE   := 32
  PER_CLASS  := 3
  STEPS      := 4
  T_EPOCHS   := 1
  T_ARGS      = --steps 20 --eval-limit 300 --samples-per-epoch 2560
  EVAL_LIMIT := --eval-limit 300 --batch-size 16
  SCORE_N    := 48
  REPORT      = $(R)/RESULTS.md
  EXPORT     := --no-export  # no stage reads a .pt2; tests/test_export.py and test_student.py test the export
  REFINE_ARGS := --steps 5  # not up to 200 per batch: refinement took a third of this profile's time
else ifeq ($(PROFILE),demo)
  N_IMAGES   := $(shell echo $$((2000 * $(SCALE))))
  N_ATTACK   := $(shell echo $$((300 * $(SCALE))))
  N_REFINE   := $(shell echo $$((1000 * $(SCALE))))
  PER_CLASS  := $(shell echo $$((150 * $(SCALE))))
  STEPS      := $(shell echo $$((200 * $(SCALE))))
  T_EPOCHS   := 1
  EVAL_LIMIT := --eval-limit 2000
  SCORE_N    := 1000
  REPORT      = $(R)/RESULTS.md
else
  N_IMAGES   := $(shell echo $$((20000 * $(SCALE))))
  N_ATTACK   := $(shell echo $$((2000 * $(SCALE))))
  N_REFINE   := $(shell echo $$((5000 * $(SCALE))))
  PER_CLASS  := $(shell echo $$((1000 * $(SCALE))))
  STEPS      := $(shell echo $$((1500 * $(SCALE))))
  T_EPOCHS   := 4
  EVAL_LIMIT :=
  SCORE_N    := 5000
  REPORT     := docs/RESULTS.md
  NOTES      := --notes docs/RESULTS_NOTES.md
endif
# BUDGET=N trains every student N times longer on the same data and teacher, into runs/PROFILE-xN
# (the budget curve: make pipeline BUDGET=4, BUDGET=16; students resume with --resume across sessions).
BUDGET ?= 1
STEPS := $(shell echo $$(($(STEPS) * $(BUDGET))))
T_ARGS ?= --epochs $(T_EPOCHS)
DATA_ROOT ?= data
RUNS_ROOT ?= runs
D := $(DATA_ROOT)/$(PROFILE)
R := $(RUNS_ROOT)/$(PROFILE)$(if $(filter-out 1,$(BUDGET)),-x$(BUDGET))
T := $(RUNS_ROOT)/$(PROFILE)/teacher/teacher.pt
WORKERS ?= 2
KDGEN   := $(BIN)/kdgen
KDTRAIN := $(BIN)/kdtrain
ADV     ?= fraction=0.5,every=1  # the online boundary attack of the *_adv students
SETS    := original shaders leaves noise photos shaders_adv leaves_adv noise_adv photos_adv curated \
           shaders_ref leaves_ref noise_ref photos_ref shaders_ref_adv leaves_ref_adv noise_ref_adv
.SECONDARY:  # keep the stamp files of pattern rules
DISTILL := $(KDTRAIN) distill --teacher $(T) --steps $(STEPS) --no-progress $(EVAL_LIMIT) $(EXPORT)
POOLS   := shaders leaves noise photos shaders_adv leaves_adv noise_adv photos_adv shaders_ref leaves_ref noise_ref photos_ref \
           pool_balanced  # scored, sheets
SURROGATE := --match-stats  # surrogate images take the teacher's input mean/std (see docs/RESULTS.md)

pipeline: install  ## everything, then the report (PROFILE=full|demo, SCALE=N)
	$(MAKE) --no-print-directory report PROFILE=$(PROFILE) SCALE=$(SCALE)
	@echo "report: $(REPORT)"

shards: $(D)/.shaders.done $(D)/.leaves.done $(D)/.noise.done $(D)/.photos.done  ## the surrogate sets

$(D)/.%.done:
	$(KDGEN) $* --n $(N_IMAGES) --out $(D) --workers $(WORKERS) --no-progress
	@touch $@

teacher: $(T)  ## the Fashion-MNIST teacher (the model owner's model)
$(T):
	$(KDTRAIN) teacher --data fashion-mnist $(T_ARGS) $(EXPORT) --out $(R)/teacher --no-progress

adversarial: $(D)/.shaders_adv.ready $(D)/.leaves_adv.ready $(D)/.noise_adv.ready $(D)/.photos_adv.ready  ## boundary-attacked sets
$(D)/.%_adv.ready: $(D)/.%.done $(T)
	$(KDTRAIN) attack --teacher $(T) --shards '$(D)/$*-0*.tar' --n $(N_ATTACK) --out $(D)/$*_adv --overwrite
	@touch $@

refined: $(D)/.shaders_ref.done $(D)/.leaves_ref.done $(D)/.noise_ref.done $(D)/.photos_ref.done  ## teacher-guided refinement of each set
$(D)/.%_ref.done: $(D)/.%.done $(T)
	$(KDTRAIN) refine --teacher $(T) --shards '$(D)/$*-0*.tar' --n $(N_REFINE) $(REFINE_ARGS) --out $(D)/$*_ref --overwrite \
	  --no-progress
	@touch $@

curated: $(D)/.pool_balanced.ready  ## class-balanced selection of the shader and leaves pool
$(D)/.pool_balanced.ready: $(D)/.shaders.done $(D)/.leaves.done $(T)
	$(KDTRAIN) curate --teacher $(T) --shards '$(D)/shaders-0*.tar' --shards '$(D)/leaves-0*.tar' \
	  --per-class $(PER_CLASS) --fill-with-attack --out $(D)/pool_balanced --overwrite
	@touch $@

students: $(foreach s,$(SETS),$(R)/students/$(s)/summary.json)  ## one student per set, same recipe and steps

$(R)/students/original/summary.json: $(T)
	$(DISTILL) --data fashion-mnist --out $(R)/students/original --resume
$(R)/students/%_adv/summary.json: $(D)/.%.done $(T)
	$(DISTILL) $(SURROGATE) --shards '$(D)/$*-0*.tar' --adv $(ADV) --out $(R)/students/$*_adv --resume
$(R)/students/curated/summary.json: $(D)/.pool_balanced.ready
	$(DISTILL) $(SURROGATE) --shards '$(D)/pool_balanced-0*.tar' --out $(R)/students/curated --resume
$(R)/students/%/summary.json: $(D)/.%.done $(T)
	$(DISTILL) $(SURROGATE) --shards '$(D)/$*-0*.tar' --out $(R)/students/$* --resume

scores: $(R)/scores/score.json  ## score every set against the teacher
$(R)/scores/score.json: shards adversarial refined curated
	$(KDTRAIN) score --teacher $(T) --n $(SCORE_N) --eval fashion-mnist --out $(R)/scores \
	  $(foreach s,$(POOLS),--shards '$(s)=$(D)/$(s)-0*.tar')

sheets: shards adversarial refined curated
	@mkdir -p $(R)/sheets
	$(foreach s,$(POOLS),$(KDGEN) preview $(D)/$(s) -o $(R)/sheets/$(s).png --count 36;)

report: students scores sheets  ## regenerate the results report from the runs' summaries
	$(KDTRAIN) report --config pipeline.yaml --runs $(R) --data $(D) --out $(REPORT) $(NOTES)

# The demo (PROFILE=demo): the teacher, the student distilled on the original images, and `kdtrain student`
# at the same budget (DEMO_STEPS steps of 128, refined images with the online attack) compared with it.
DEMO_STEPS  ?= 400
DEMO_IMAGES ?= 1000
demo-student: $(R)/original/summary.json
	$(KDTRAIN) student --teacher $(T) --out $(R)/student --budget $$(($(DEMO_STEPS) * 128)) --images $(DEMO_IMAGES) \
	  --reference $(R)/original --workers $(WORKERS) --no-progress
$(R)/original/summary.json: $(T)
	$(KDTRAIN) distill --teacher $(T) --data fashion-mnist --steps $(DEMO_STEPS) --no-progress --out $(R)/original --resume
