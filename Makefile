# Thin wrapper over scripts/ (which wrap meson) for people who type make.
.PHONY: all demo test bench clean
all:
	scripts/build
demo:
	scripts/demo
test:
	scripts/test
bench:
	bench/run
clean:
	rm -rf build
