# Thin wrapper over scripts/ (which wrap meson) for people who type make.
.PHONY: all musl demo test bench clean
all:
	scripts/build
musl:
	scripts/build-musl
demo:
	scripts/demo
test:
	scripts/test
bench:
	bench/run
clean:
	rm -rf build build-musl
