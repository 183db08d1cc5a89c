{
  description = "Seed-style dev shell, the baseline for bench/shell_entry.py: reruns pip install on every entry";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forEachSystem = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      devShells = forEachSystem (pkgs: {
        default = pkgs.mkShell {
          buildInputs = with pkgs; [
            python311
            python311Packages.pip
            python311Packages.virtualenv
            figlet
            tmux
            zlib
            git
            curl
            wget
            cmake
            htop
          ];
          shellHook = ''
            export LD_LIBRARY_PATH=${pkgs.lib.makeLibraryPath [ pkgs.stdenv.cc.cc.lib pkgs.zlib ]}:$LD_LIBRARY_PATH
            figlet "Seed"
            test -d .venv || python -m venv .venv
            source .venv/bin/activate
            pip install -r requirements.txt --quiet
          '';
        };
      });
    };
}
