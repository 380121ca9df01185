# Every target makes and uses .venv itself: a fresh clone needs only `make run` or `make test`.
# `make run` installs what the appliance needs and nothing else; the test and lint tools (pytest, mypy,
# ruff, selenium: the `dev` extra) and the headless browser come with `make test` (or `make setup`).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUN_STAMP   := $(VENV)/.installed-run
STAMP       := $(VENV)/.installed-dev
BENCH_STAMP := $(VENV)/.installed-bench
TEST_STAMP  := $(VENV)/.installed-test
# axe-core, the accessibility checker tests/browser runs in Chromium: npm's tarball of a pinned version,
# checked against the registry's sha512 (its `integrity`, in hex), unpacked once into the venv so that
# the tests never need the Internet. To move to a newer 4.x: `npm view axe-core@X dist.integrity`.
AXE_VERSION := 4.14.1
AXE_SHA512  := 1477dafa598d8d065f273d6af302aa203c02e83131707b7fa648cd41bd3d6b734f8c22a0dab86ee6a6f64b8afbe804b214d36db85a2826965edfb3a0b9d546b5
AXE         := $(VENV)/share/axe-core/$(AXE_VERSION)/axe.min.js

.PHONY: setup system-packages demo-config run test lint typecheck contracts pytest bench clean axe guide-images

setup: $(STAMP)

system-packages:
	sh deploy/system-packages.sh

$(RUN_STAMP): pyproject.toml deploy/system-packages.sh
	sh deploy/system-packages.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(STAMP): $(RUN_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# The tests also drive a real headless Chromium (tests/browser): `make run` does not need it.
$(TEST_STAMP): $(STAMP)
	sh deploy/system-packages.sh --test
	touch $@

axe: $(AXE)

$(AXE):
	mkdir -p $(dir $@)
	curl -fsSL --retry 2 -o $@.tgz https://registry.npmjs.org/axe-core/-/axe-core-$(AXE_VERSION).tgz
	echo "$(AXE_SHA512)  $@.tgz" | sha512sum -c --quiet -
	tar -xzf $@.tgz -O package/axe.min.js > $@.part && mv $@.part $@ && rm $@.tgz

$(BENCH_STAMP): $(STAMP)
	sh deploy/system-packages.sh --bench
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

# The demo's configuration in its data folder (./var, or $APPLIANCE_DATA_DIR): the embedded demo
# configuration, written afresh at every run, with its profiles in the data folder so the dashboard may
# change them. The profiles are copied from the shipped file at the first run only: changes made in the
# dashboard stay; delete $(DEMO_DIR)/policy/profiles.yaml to start again from the shipped profiles.
DEMO_DIR ?= $(or $(APPLIANCE_DATA_DIR),var)
demo-config:
	mkdir -p $(DEMO_DIR)/policy
	test -e $(DEMO_DIR)/policy/profiles.yaml || cp appliance/defaults/policy/profiles.yaml $(DEMO_DIR)/policy/
	{ echo "# Written by make run from appliance/defaults/appliance.yaml at each run: change that file, not"; \
	  echo "# this one. The profiles below are the data folder's copy, which the dashboard may change."; \
	  echo "data_dir: ."; \
	  sed -e 's|^policy:$$|policy:\n  profiles: policy/profiles.yaml|' appliance/defaults/appliance.yaml; \
	} > $(DEMO_DIR)/appliance.yaml.new && mv $(DEMO_DIR)/appliance.yaml.new $(DEMO_DIR)/appliance.yaml

# The appliance on the demo configuration: compile the bundled lists, look some names up, then run the
# DNS filter on 127.0.0.1:5353 and [::1]:5353, the web proxy on 127.0.0.1:8080, the dashboard with the
# children's portal on 127.0.0.1:8000 and the alerter until Ctrl-C.
run: export APPLIANCE_CONFIG := $(abspath $(DEMO_DIR)/appliance.yaml)
run: $(RUN_STAMP) demo-config
	$(BIN)/appliance check
	$(BIN)/appliance lists compile
	$(BIN)/appliance lists match www.pornhub.com
	$(BIN)/appliance lists match https://en.wikipedia.org/wiki/Rainbow
	$(BIN)/appliance lists match https://ad.doubleclick.net/ad.js --type script --from https://news.example/
	$(BIN)/appliance explain --profile 10-12 --at 2026-11-24T16:00 www.instagram.com
	$(BIN)/appliance explain --profile 13-17 --at 2026-11-24T16:00 'https://www.google.com/search?q=homework+help'
	$(BIN)/appliance explain --profile under-10 --at 2026-11-24T21:00 en.wikipedia.org
	@echo "DNS filter on 127.0.0.1:5353 and [::1]:5353; try: dig @127.0.0.1 -p 5353 www.google.com"
	@echo "Web proxy on 127.0.0.1:8080; try: curl -x http://127.0.0.1:8080 http://www.pornhub.com/"
	@echo "Staff dashboard on http://127.0.0.1:8000/ and the children's portal on http://127.0.0.1:8000/portal"
	@echo "  sign in: open the one-time set-up link printed below, or run: $(BIN)/appliance users add NAME --role admin"
	@echo "Alerts: the alerter raises them and tells alerts.yaml's contacts (docs/alerts.md)"
	@echo "(Ctrl-C stops all four)"
	$(BIN)/appliance proxy & proxy=$$!; $(BIN)/appliance dashboard & dashboard=$$!; \
	$(BIN)/appliance alerts & alerts=$$!; \
	trap 'kill $$proxy $$dashboard $$alerts 2>/dev/null; wait $$proxy $$dashboard $$alerts' EXIT INT TERM; \
	$(BIN)/appliance dns

# The staff guide's pictures (docs/images/*.png), retaken by the browser tests at a desk's 1280 px:
# each picture is the screenshot of the step named after it (tests/browser, test-artifacts/screenshots).
SHOTS := test-artifacts/screenshots
GUIDE_WALK := test_two_children_their_records_kept_apart_and_a_pin_lock_lifted_by_staff[desk]
GUIDE_SCENARIO := test_a_flagged_visit_goes_from_the_portal_to_the_yearly_report
GUIDE_ALERTS := test_an_alert_appears_in_the_open_pages_banner_and_acknowledge_makes_it_go
GUIDE_ROTA := test_the_alerts_page_says_who_is_told_on_a_desk_and_a_phone_and_never_a_channels_address
GUIDE_OVERVIEW := test_the_overview_at_a_desk_and_on_a_phone_follows_the_centre_live
GUIDE_PORTAL_TIME := test_the_portal_tells_a_signed_in_child_what_is_left_and_warns_at_five_minutes
guide-images: $(TEST_STAMP) $(AXE)
	$(BIN)/pytest -q tests/browser/test_staff_signin.py tests/browser/test_scenario.py \
	    'tests/browser/test_walk.py::$(GUIDE_WALK)' 'tests/browser/test_alerts.py::$(GUIDE_ALERTS)' \
	    'tests/browser/test_alerts.py::$(GUIDE_ROTA)' tests/browser/test_overview.py
	cp $(SHOTS)/test_staff_sign_in_lands_on_the_dashboard_and_signs_out/*-signin-page.png docs/images/signin.png
	cp '$(SHOTS)/$(GUIDE_WALK)/'*-feed-two-children.png docs/images/feed.png
	cp $(SHOTS)/$(GUIDE_SCENARIO)/*-review-event.png docs/images/event.png
	cp '$(SHOTS)/$(GUIDE_WALK)/'*-incident-opened.png docs/images/incident.png
	cp '$(SHOTS)/$(GUIDE_WALK)/'*-people-child-locked.png docs/images/people.png
	cp $(SHOTS)/$(GUIDE_SCENARIO)/*-portal-signin.png docs/images/portal.png
	cp $(SHOTS)/$(GUIDE_SCENARIO)/*-yearly-report.png docs/images/report.png
	cp $(SHOTS)/$(GUIDE_ALERTS)/*-alert-banner.png docs/images/alert-banner.png
	cp $(SHOTS)/$(GUIDE_ALERTS)/*-alerts-page.png docs/images/alerts-page.png
	cp $(SHOTS)/$(GUIDE_ROTA)/*-alerts-rota.png docs/images/alerts-rota.png
	cp $(SHOTS)/$(GUIDE_OVERVIEW)/*-desk-overview.png docs/images/overview.png
	cp $(SHOTS)/$(GUIDE_OVERVIEW)/*-phone-overview.png docs/images/overview-phone.png
	cp $(SHOTS)/$(GUIDE_OVERVIEW)/*-desk-child-time.png docs/images/child-time.png
	cp $(SHOTS)/$(GUIDE_PORTAL_TIME)/*-portal-time-left.png docs/images/portal-time-left.png

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

# After the test packages (they bring curl), axe-core: make reads prerequisites left to right.
pytest: $(TEST_STAMP) $(AXE)
	$(BIN)/pytest

# Lint, types, the layering contract, then the whole suite.
test: lint typecheck contracts pytest

bench: $(BENCH_STAMP)
	$(BIN)/python bench/matching.py
	$(BIN)/python bench/phrases.py
	$(BIN)/python bench/decide.py
	$(BIN)/python bench/dns.py
	$(BIN)/python bench/proxy.py
	$(BIN)/python bench/store.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
