# hactl — build, test, lab. Run as root on Debian/Ubuntu for the lab targets.
SHELL      := /bin/bash
GO         ?= go
N          ?= 3
APPS       ?= 0
HACTL_LAB_DIR ?= /var/lib/hactl-lab
export HACTL_LAB_DIR
BIN        := bin/hactl
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS    := -s -w -X github.com/hactl/hactl/pkg/cli.Version=$(VERSION)

.PHONY: build test test-deps unit e2e demo lab-image lab-up lab-down lab-status lab-purge fuzz clean bench

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/hactl

# make test: unit tests always; the end-to-end tests against the container-VM lab when run as root.
# test-deps first installs (as root, with apt-get, only when missing) the tools the tests run:
# keepalived (keepalived -t), shellcheck (lab scripts), nftables (e2e network faults), chromium (e2e report page),
# prometheus (promtool and the scrape e2e), curl (e2e downloads), python3 (the lab's app servers).
# Then the unit tests and the e2e tests run side by side: the e2e tests spend most of their time
# waiting on VRRP timers and apt in the lab hosts, and the lab image (a cold base build is ~85 s
# of debootstrap) is built before them, beside the unit tests too. The unit tests (go vet, go test)
# run at nice 19 so that, on 2 cores, the failover timings the e2e tests measure never wait
# for a compiler (the lab hosts, hactl and the probes keep their normal priority).
test: test-deps
	@$(MAKE) --no-print-directory -j2 --output-sync=line UNIT_NICE='nice -n 19' unit e2e

test-deps:
	@bash e2e/lab/lab.sh test-deps

UNIT_NICE ?=
unit:
	$(UNIT_NICE) $(GO) vet ./...
	$(UNIT_NICE) $(GO) test -count=1 ./...

# The e2e tests (e2e/lanes.sh): by default in three labs at once, each in its own network
# namespace (~8 min here); E2E_LANES=1 runs them in one lab, one after another (~17 min).
E2E_LANES ?= 3
export E2E_LANES
e2e: build lab-image
	@if [ "$$(id -u)" != 0 ]; then echo "e2e: skipped (the container-VM lab needs root)"; else \
	  bash e2e/lanes.sh ; fi

# make demo: a 3-host lab, apply, status and a failover test; the lab stays up.
demo: build
	bash e2e/lab/lab.sh up 3
	$(BIN) apply -i $(HACTL_LAB_DIR)/lab.hcl
	$(BIN) status -i $(HACTL_LAB_DIR)/lab.hcl
	$(BIN) failover-test -i $(HACTL_LAB_DIR)/lab.hcl --node lab1 --mode stop
	@echo
	@echo "The lab is still up: try '$(BIN) status -i $(HACTL_LAB_DIR)/lab.hcl'. Run 'make lab-down' when done."

# make fuzz FUZZTIME=5m: each fuzz target in turn (Go fuzzes one target per run), FUZZTIME each.
fuzz:
	$(GO) test ./pkg/inventory -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $${FUZZTIME:-60s}
	$(GO) test ./pkg/render -run '^$$' -fuzz '^FuzzRender$$' -fuzztime $${FUZZTIME:-60s}
	$(GO) test ./pkg/render -run '^$$' -fuzz '^FuzzSites$$' -fuzztime $${FUZZTIME:-60s}

# make bench: hactl vs Ansible on the lab (several minutes, as root); writes BENCHMARKS.md.
bench:
	bash bench/run.sh all

# The lab's cached base and repo only (as root; the e2e tests skip otherwise).
lab-image:
	@if [ "$$(id -u)" = 0 ]; then bash e2e/lab/lab.sh image; else echo "lab-image: skipped (the container-VM lab needs root)"; fi

lab-up:
	bash e2e/lab/lab.sh up $(N) $(APPS)

lab-down:
	bash e2e/lab/lab.sh down-all

lab-status:
	bash e2e/lab/lab.sh status

lab-purge:
	bash e2e/lab/lab.sh purge

clean:
	rm -rf bin out
