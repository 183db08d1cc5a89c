# The NixOS module (nixosModules.default in flake.nix): services.<slug> runs the launcher that `nix run` runs, as a
# systemd service with its own user, its state in /var/lib/<slug> and, if asked, a PostgreSQL database on the same
# machine. In a NixOS configuration's flake, with this repo as the input `app`:
#   modules = [ app.nixosModules.default { services.<slug>.enable = true; } ];
{ slug, title, defaultPort, serve }:
{ config, lib, pkgs, ... }:
let
  cfg = config.services.${slug};
  inherit (lib) mkIf mkOption types;
in
{
  options.services.${slug} = {
    enable = lib.mkEnableOption title;

    package = mkOption {
      type = types.package;
      default = serve pkgs;
      description = "The launcher to run: this flake's app, built with the system's nixpkgs.";
    };

    host = mkOption {
      type = types.str;
      default = "127.0.0.1";
      description = ''
        The address to serve on. On any other, the app refuses to start until a sign-in method is configured: put
        its settings in environmentFile.
      '';
    };

    port = mkOption {
      # The service holds no capabilities, so it cannot bind below 1024: a reverse proxy serves 80 and 443.
      type = types.ints.between 1024 65535;
      default = defaultPort;
      description = "The port to serve on.";
    };

    user = mkOption {
      type = types.str;
      default = slug;
      description = "The user the service runs as. The default one is created as a system user; another must exist.";
    };

    group = mkOption {
      type = types.str;
      default = slug;
      description = "The group the service runs as. The default one is created; another must exist.";
    };

    environmentFile = mkOption {
      # A string, never a Nix path: a path such as ./secrets.env would be copied into the world-readable store.
      type = types.nullOr (types.strMatching "/.+");
      default = null;
      example = "/run/secrets/${slug}.env";
      description = ''
        A file of NAME=value lines (API keys, sign-in settings) that systemd reads as root when the service starts
        and hands to the app as its environment. Keep it 0600 and out of the repo and the Nix store.
      '';
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open port in the firewall, for a host other than 127.0.0.1 reached without a reverse proxy.";
    };

    database.createLocally = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Run PostgreSQL on this machine with a database and a role both named after user, and connect the app to it
        over its socket (DATABASE_URL). Off, the app keeps an SQLite file in its state directory.
      '';
    };
  };

  config = mkIf cfg.enable (lib.mkMerge [
    {
      systemd.services.${slug} = {
        description = title;
        wantedBy = [ "multi-user.target" ];
        # The first start installs the lock from PyPI into the cache directory, as the first `nix run` does.
        wants = [ "network-online.target" ];
        after = [ "network-online.target" ];
        environment = {
          HOST = cfg.host;
          PORT = toString cfg.port;
          DATA_DIR = "/var/lib/${slug}";
          # The launcher's venv, and uv's or pip's download cache, in the cache directory: ProtectSystem=strict
          # leaves nothing else writable.
          XDG_CACHE_HOME = "/var/cache/${slug}";
        };
        serviceConfig = {
          ExecStart = "${cfg.package}/bin/${slug}";
          User = cfg.user;
          Group = cfg.group;
          StateDirectory = slug;
          StateDirectoryMode = "0700";
          CacheDirectory = slug;
          CacheDirectoryMode = "0700";
          EnvironmentFile = mkIf (cfg.environmentFile != null) cfg.environmentFile;
          Restart = "on-failure";
          UMask = "0077";

          # The app needs its two directories and the network, and nothing else of the machine.
          NoNewPrivileges = true;
          CapabilityBoundingSet = "";
          PrivateTmp = true;
          PrivateDevices = true;
          ProtectSystem = "strict";
          ProtectHome = true;
          ProtectProc = "invisible";
          ProtectClock = true;
          ProtectHostname = true;
          ProtectControlGroups = true;
          ProtectKernelLogs = true;
          ProtectKernelModules = true;
          ProtectKernelTunables = true;
          RestrictAddressFamilies = [ "AF_UNIX" "AF_INET" "AF_INET6" ];
          RestrictNamespaces = true;
          RestrictRealtime = true;
          RestrictSUIDSGID = true;
          LockPersonality = true;
          SystemCallArchitectures = "native";
          SystemCallFilter = [ "@system-service" "~@privileged" ];
        };
      };

      users.users = mkIf (cfg.user == slug) {
        ${slug} = {
          isSystemUser = true;
          inherit (cfg) group;
        };
      };
      users.groups = mkIf (cfg.group == slug) { ${slug} = { }; };

      networking.firewall.allowedTCPPorts = mkIf cfg.openFirewall [ cfg.port ];
    }

    (mkIf cfg.database.createLocally {
      # ensureDBOwnership needs the database and the role to share a name; peer authentication over the socket
      # then lets the service's user in without a password.
      services.postgresql = {
        enable = true;
        ensureDatabases = [ cfg.user ];
        ensureUsers = [{ name = cfg.user; ensureDBOwnership = true; }];
      };
      systemd.services.${slug} = {
        # postgresql.target is reached once the database and role exist (nixpkgs 25.05 and later).
        requires = [ "postgresql.target" ];
        after = [ "postgresql.target" ];
        environment.DATABASE_URL = "postgresql:///${cfg.user}?host=/run/postgresql";
      };
    })
  ]);
}
