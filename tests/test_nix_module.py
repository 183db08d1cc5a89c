"""The rendered NixOS module (nixosModules.default, nix/module.nix), evaluated for real with `nix eval`: the stand-in's
lib.evalModules runs it beside the NixOS options it writes to (declared below with NixOS's names and types), and the
tests read the resulting systemd unit, user, firewall and PostgreSQL settings. The host's `systemd-analyze verify`
checks the unit, written as NixOS writes it, and the unit file docs/deploy.md gives for other Linux.

What this cannot show (docs/deploy.md): that a real NixOS system with the module builds and boots, that the app runs
under the unit's hardening, and that PostgreSQL's ensure* settings create what the app connects to.
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from helpers import REPO, VARIANTS, WEB, need
from nixenv import STANDIN, current_system, flake_show, run

# The slice of NixOS's option declarations the module writes to, with NixOS's names and types (nixos/modules/system/
# boot/systemd.nix and nixos/lib/systemd-unit-options.nix, config/users-groups.nix, services/databases/postgresql.nix,
# services/networking/firewall.nix); stricter than NixOS where NixOS takes more (environment values are strings here).
# A definition for anything not declared fails the evaluation, as on NixOS.
NIXOS_OPTIONS = """
{ lib, ... }:
let
  inherit (lib) mkOption types;
  # A systemd setting: definitions that include a list are concatenated, others must agree.
  unitOption = lib.mkOptionType {
    name = "systemd option";
    merge = loc: defs:
      if builtins.any (def: builtins.isList def.value) defs
      then builtins.concatMap (def: if builtins.isList def.value then def.value else [ def.value ]) defs
      else lib.mergeEqualOption loc defs;
  };
  units = mkOption { type = types.listOf types.str; default = [ ]; };
in
{
  options.systemd.services = mkOption {
    default = { };
    type = types.attrsOf (types.submodule {
      options = {
        description = mkOption { type = types.str; default = ""; };
        wantedBy = units;
        wants = units;
        after = units;
        requires = units;
        environment = mkOption { type = types.attrsOf (types.nullOr types.str); default = { }; };
        serviceConfig = mkOption { type = types.attrsOf unitOption; default = { }; };
      };
    });
  };
  options.users.users = mkOption {
    default = { };
    type = types.attrsOf (types.submodule {
      options.isSystemUser = mkOption { type = types.bool; default = false; };
      options.group = mkOption { type = types.str; default = ""; };
    });
  };
  options.users.groups = mkOption { default = { }; type = types.attrsOf (types.submodule { }); };
  options.services.postgresql = {
    enable = lib.mkEnableOption "PostgreSQL Server";
    ensureDatabases = mkOption { type = types.listOf types.str; default = [ ]; };
    ensureUsers = mkOption {
      default = [ ];
      type = types.listOf (types.submodule {
        options.name = mkOption { type = types.str; };
        options.ensureDBOwnership = mkOption { type = types.bool; default = false; };
      });
    };
  };
  options.networking.firewall.allowedTCPPorts = mkOption { type = types.listOf types.port; default = [ ]; };
}
"""

# A configuration.nix fragment per case; evaluate() puts the render's slug where SLUG stands.
CASES = {
    "off": "{ }",
    "defaults": '{ services."SLUG".enable = true; }',
    "team": """{
      services."SLUG" = {
        enable = true;
        host = "0.0.0.0";
        port = 8080;
        openFirewall = true;
        environmentFile = "/run/secrets/SLUG.env";
        database.createLocally = true;
      };
    }""",
    "own-user": """{
      users.users.alice = { isSystemUser = true; group = "staff"; };
      users.groups.staff = { };
      services."SLUG" = { enable = true; user = "alice"; group = "staff"; database.createLocally = true; };
    }""",
    # Refused: a Nix path would put the secrets in the store; the service cannot bind below 1024.
    "secrets-in-store": '{ services."SLUG" = { enable = true; environmentFile = ./secrets.env; }; }',
    "low-port": '{ services."SLUG" = { enable = true; port = 443; }; }',
}
REFUSED = {"secrets-in-store", "low-port"}
HARDENING = {
    "UMask": "0077",
    "NoNewPrivileges": True,
    "CapabilityBoundingSet": "",
    "PrivateTmp": True,
    "PrivateDevices": True,
    "ProtectSystem": "strict",
    "ProtectHome": True,
    "ProtectProc": "invisible",
    "ProtectClock": True,
    "ProtectHostname": True,
    "ProtectControlGroups": True,
    "ProtectKernelLogs": True,
    "ProtectKernelModules": True,
    "ProtectKernelTunables": True,
    "RestrictAddressFamilies": ["AF_UNIX", "AF_INET", "AF_INET6"],
    "RestrictNamespaces": True,
    "RestrictRealtime": True,
    "RestrictSUIDSGID": True,
    "LockPersonality": True,
    "SystemCallArchitectures": "native",
    "SystemCallFilter": ["@system-service", "~@privileged"],
}
# Quotes, backslashes, Nix interpolation (in both string kinds) and an apostrophe pair: an unescaped one would break
# the flake, or run the abort.
HOSTILE_TITLE = """Tom's "A" ${builtins.abort "x"} \\${x} ''${y} '' \\ end"""


def module_flake(app: Path, dest: Path) -> Path:
    """A flake that evaluates `app`'s nixosModules.default once per case, against the stand-in for nixpkgs."""
    dest.mkdir()
    (dest / "nixos-options.nix").write_text(NIXOS_OPTIONS)
    (dest / "secrets.env").write_text("SECRET=never-in-the-store\n")
    (dest / "flake.nix").write_text(f"""{{
  inputs.nixpkgs.url = "path:{STANDIN}";
  inputs.app.url = "path:{app}";
  inputs.app.inputs.nixpkgs.follows = "nixpkgs";
  outputs = {{ self, nixpkgs, app }}:
    let
      system = "{current_system()}";
      evaluate = configuration: (nixpkgs.lib.evalModules {{
        modules = [ ./nixos-options.nix app.nixosModules.default configuration ];
        specialArgs.pkgs = nixpkgs.legacyPackages.${{system}};
      }}).config;
    in
    {{
      launcher = app.packages.${{system}}.default;
      config = builtins.mapAttrs (_: evaluate) (import ./cases.nix);
    }};
}}
""")
    return dest


class Evaluated:
    """One render's module, evaluated: `configs[case]` is the NixOS configuration each accepted case gives."""

    def __init__(self, app: Path, slug: str, dest: Path):
        self.slug = slug
        self.flake = module_flake(app, dest)
        cases = {name: text.replace("SLUG", slug) for name, text in CASES.items()}
        (self.flake / "cases.nix").write_text("{\n" + "".join(f'  "{n}" = {t};\n' for n, t in cases.items()) + "}\n")
        self.launcher = self.eval("launcher.outPath", "--raw").stdout
        self.configs = {name: json.loads(self.eval(f'config."{name}"').stdout) for name in CASES if name not in REFUSED}

    def eval(self, attr: str, output: str = "--json", check: bool = True):
        return run(["nix", "eval", output, f"path:{self.flake}#{attr}", "--no-write-lock-file"], check=check)

    def unit(self, case: str) -> dict:
        return self.configs[case]["systemd"]["services"][self.slug]

    def build_launcher(self) -> None:
        run(["nix", "build", "--no-link", f"path:{self.flake}#launcher", "--no-write-lock-file"])


def unit_file(unit: dict) -> str:
    """The unit file NixOS writes for a systemd.services entry (nixos/lib/systemd-lib.nix): a list gives one line per
    item, a boolean true or false, each environment variable a JSON-quoted Environment= line; wantedBy is a link in
    NixOS, an [Install] line here."""
    def lines(settings: dict) -> list[str]:
        return [f"{name}={str(item).lower() if isinstance(item, bool) else item}"
                for name, value in settings.items() for item in (value if isinstance(value, list) else [value])]
    head = {"Description": unit["description"], **{name.capitalize(): " ".join(unit[name])
                                                   for name in ("after", "wants", "requires") if unit[name]}}
    environment = [f"Environment={json.dumps(f'{name}={value}')}" for name, value in unit["environment"].items()]
    return "\n".join(["[Unit]", *lines(head), "", "[Service]", *environment, *lines(unit["serviceConfig"]), "",
                      "[Install]", *lines({"WantedBy": unit["wantedBy"]}), ""])


def systemd_verify(folder: Path, name: str, text: str) -> str:
    """`systemd-analyze verify` of the unit `name` (holding `text`): the warnings it prints. NixOS's postgresql.target,
    which a Debian host has not, is an empty target beside it."""
    (folder / name).write_text(text)
    (folder / "postgresql.target").write_text("[Unit]\nDescription=NixOS's postgresql.target, for systemd-analyze\n")
    result = subprocess.run([need("systemd-analyze"), "verify", "--man=no", str(folder / name)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return (result.stdout + result.stderr).strip()


@pytest.fixture(scope="module")
def pipulate(render, tmp_path_factory) -> Evaluated:
    need("nix")
    app = render("pipulate", demo=False, jupyter=False)
    return Evaluated(app, "pipulate", tmp_path_factory.mktemp("nix-module") / "pipulate")


def test_off_by_default(pipulate):
    off = pipulate.configs["off"]
    assert off["services"]["pipulate"]["enable"] is False
    assert off["systemd"]["services"] == {} and off["users"] == {"users": {}, "groups": {}}
    assert off["services"]["postgresql"]["enable"] is False and off["networking"]["firewall"]["allowedTCPPorts"] == []


def test_defaults_serve_on_loopback_with_state_in_the_state_directory(pipulate):
    config = pipulate.configs["defaults"]
    unit = pipulate.unit("defaults")
    assert unit["serviceConfig"]["ExecStart"] == f"{pipulate.launcher}/bin/pipulate", "not the flake's own launcher"
    assert unit["environment"] == {"HOST": "127.0.0.1", "PORT": "5001", "DATA_DIR": "/var/lib/pipulate",
                                   "XDG_CACHE_HOME": "/var/cache/pipulate"}
    service = unit["serviceConfig"]
    assert service["StateDirectory"] == "pipulate" and service["StateDirectoryMode"] == "0700"
    assert service["CacheDirectory"] == "pipulate"
    assert service["User"] == service["Group"] == "pipulate"
    assert "EnvironmentFile" not in service
    assert {name: service.get(name) for name in HARDENING} == HARDENING
    assert unit["wantedBy"] == ["multi-user.target"]
    assert "postgresql.target" not in unit["after"] + unit["requires"]
    assert config["users"]["users"] == {"pipulate": {"isSystemUser": True, "group": "pipulate"}}
    assert config["users"]["groups"] == {"pipulate": {}}
    assert config["services"]["postgresql"]["enable"] is False
    assert config["networking"]["firewall"]["allowedTCPPorts"] == []


def test_team_server_with_local_postgresql_and_secrets(pipulate):
    config = pipulate.configs["team"]
    unit = pipulate.unit("team")
    assert unit["environment"] == {
        "HOST": "0.0.0.0", "PORT": "8080", "DATA_DIR": "/var/lib/pipulate", "XDG_CACHE_HOME": "/var/cache/pipulate",
        "DATABASE_URL": "postgresql:///pipulate?host=/run/postgresql",
    }
    assert unit["serviceConfig"]["EnvironmentFile"] == "/run/secrets/pipulate.env"
    assert "postgresql.target" in unit["after"] and "postgresql.target" in unit["requires"]
    assert "network-online.target" in unit["after"] and "network-online.target" in unit["wants"]
    postgresql = config["services"]["postgresql"]
    assert postgresql == {"enable": True, "ensureDatabases": ["pipulate"],
                          "ensureUsers": [{"name": "pipulate", "ensureDBOwnership": True}]}
    assert config["networking"]["firewall"]["allowedTCPPorts"] == [8080]


def test_an_existing_user_owns_the_service_and_the_database(pipulate):
    config = pipulate.configs["own-user"]
    service = pipulate.unit("own-user")["serviceConfig"]
    assert (service["User"], service["Group"]) == ("alice", "staff")
    assert config["users"]["users"] == {"alice": {"isSystemUser": True, "group": "staff"}}, "made a user nobody uses"
    assert config["users"]["groups"] == {"staff": {}}
    assert config["services"]["postgresql"]["ensureUsers"] == [{"name": "alice", "ensureDBOwnership": True}]
    assert pipulate.unit("own-user")["environment"]["DATABASE_URL"] == "postgresql:///alice?host=/run/postgresql"


@pytest.mark.parametrize("case", ["defaults", "team"])
def test_systemd_accepts_the_unit(pipulate, case, tmp_path):
    """Every setting is one systemd 252 knows, with a value it parses: it only warns ("Unknown key ..., ignoring")
    of the others, so any output is a failure."""
    pipulate.build_launcher()
    assert systemd_verify(tmp_path, "pipulate.service", unit_file(pipulate.unit(case))) == ""


def test_the_documented_unit_for_other_linux_is_valid(pipulate, tmp_path):
    """docs/deploy.md's unit file, run against the launcher it would find at /opt/my-app."""
    pipulate.build_launcher()
    doc = (REPO / "docs" / "deploy.md").read_text()
    text = re.search(r"<<'UNIT'\n(.*?\n)UNIT\n", doc, re.S)[1]
    assert "ExecStart=/opt/my-app/bin/my-app\n" in text
    text = text.replace("/opt/my-app/bin/my-app", f"{pipulate.launcher}/bin/pipulate")
    assert systemd_verify(tmp_path, "my-app.service", text) == ""


@pytest.mark.parametrize("case, problem", [
    ("secrets-in-store", "environmentFile' is not of type `null or string matching the pattern /.+'"),
    ("low-port", "port' is not of type `integer between 1024 and 65535"),
])
def test_refused_settings(pipulate, case, problem):
    result = pipulate.eval(f'config."{case}"', check=False)
    assert result.returncode != 0 and problem in result.stderr, result.stderr


def test_answers_reach_the_module_escaped(render, tmp_path):
    """Answers reach the module only through flake.nix's escaped bindings: nix/module.nix is the same file in every
    render, and a hostile title is the unit's description exactly."""
    need("nix")
    answers = {"demo": False, "jupyter": False, "project_name": "team-tools", "app_title": HOSTILE_TITLE, "port": 6123}
    app = render("pipulate", **answers)
    plain = render("pipulate", demo=False, jupyter=False)
    assert (app / "nix" / "module.nix").read_bytes() == (plain / "nix" / "module.nix").read_bytes()
    evaluated = Evaluated(app, "team-tools", tmp_path / "team-tools")
    unit = evaluated.unit("defaults")
    assert unit["description"] == HOSTILE_TITLE
    assert unit["serviceConfig"]["ExecStart"] == f"{evaluated.launcher}/bin/team-tools"
    assert unit["environment"]["PORT"] == "6123" and unit["environment"]["DATA_DIR"] == "/var/lib/team-tools"
    assert evaluated.configs["team"]["services"]["postgresql"]["ensureDatabases"] == ["team-tools"]


def test_only_web_renders_have_the_module(render):
    need("nix")
    for variant in VARIANTS:
        app = render(variant, **({"demo": False} if variant in WEB else {}), jupyter=False)
        modules = flake_show(app).get("nixosModules", {})
        assert (set(modules), (app / "nix").exists()) == (({"default"}, True) if variant in WEB else (set(), False))
