{
  description = "flakewright: one copier template, three Nix + Python repos (darwinix, pipulate, botifython)";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
      forEachSystem = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      # One entry per variant, shared with the CLI and the tests: generator/flakewright/variants.toml.
      table = builtins.fromTOML (builtins.readFile ./generator/flakewright/variants.toml);

      template = variant: { description, next, ... }: {
        path = ./examples/${variant};
        inherit description;
        # nix renders this as Markdown: the blank line after "Next:" makes the steps a list.
        welcomeText = ''
          # ${variant}
          ${description}

          Next:

          1. `git init && git add -A && git commit -m init` (Nix flakes only see files git tracks)
          2. `nix develop` (the first entry builds .venv from requirements.txt)
          3. ${next}
          4. `pytest` (the repo's own tests)
        '';
      };
    in
    {
      templates = builtins.mapAttrs template table.variants // {
        default = self.templates.${table.default};
      };

      # Working on flakewright itself: Python, uv and the tools the tests drive.
      devShells = forEachSystem (pkgs: {
        default = pkgs.mkShell {
          packages = [ pkgs.python311 pkgs.uv pkgs.git pkgs.tmux ];
          shellHook = ''
            if [ ! -x .venv/bin/flakewright ]; then
              python3 -m venv --without-pip .venv && uv pip install --quiet --python .venv/bin/python -e '.[test]'
            fi
            source .venv/bin/activate
          '';
        };
      });

      # `nix run github:<owner>/flakewright -- new my-app`: installs this source
      # into a cached venv (once per flakewright revision) and runs the CLI.
      apps = forEachSystem (pkgs: {
        default = {
          type = "app";
          program = "${pkgs.writeShellScript "flakewright" ''
            set -euo pipefail
            venv="''${XDG_CACHE_HOME:-$HOME/.cache}/flakewright/${builtins.baseNameOf self}"
            if [ ! -x "$venv/bin/flakewright" ]; then
              ${pkgs.python311.interpreter} -m venv --without-pip "$venv"
              ${pkgs.uv}/bin/uv pip install --quiet --python "$venv/bin/python" ${self}
            fi
            exec "$venv/bin/flakewright" "$@"
          ''}";
        };
      });
    };
}
