# The module system a NixOS module is evaluated with: lib.evalModules, the property and option helpers, and the types
# listed in README.md, under nixpkgs' names and with the semantics of nixpkgs' lib/modules.nix, lib/options.nix and
# lib/types.nix for that subset. Anything outside it (mkOrder, _module.args, freeformType, type merging) is absent,
# so a module that needs it fails here loudly rather than evaluating differently.
lib:
let
  inherit (builtins) all any attrNames concatMap concatStringsSep elem filter foldl' head isAttrs isBool isFunction
    isInt isList isPath isString length mapAttrs tail;

  showOption = concatStringsSep ".";
  isOption = x: (x._type or "") == "option";
  isDerivation = x: (x.type or "") == "derivation";
  unique = foldl' (seen: x: if elem x seen then seen else seen ++ [ x ]) [ ];
  last = list: builtins.elemAt list (length list - 1);
  genAttrs = names: f: builtins.listToAttrs (map (name: { inherit name; value = f name; }) names);
  filterAttrs = pred: set: removeAttrs set (filter (name: !pred name set.${name}) (attrNames set));
  files = defs: concatStringsSep ", " (unique (map (def: "`${def.file}'") defs));
  # Each of `values` as a definition from def's file.
  fromFileOf = def: map (value: { inherit (def) file; inherit value; });

  defaultOverridePriority = 100;

  # mkIf, mkMerge and mkOverride around a set of options are moved onto each attribute, so a module's attribute
  # names are known without evaluating its conditions (which may read config).
  pushDownProperties = cfg:
    if (cfg._type or "") == "merge" then concatMap pushDownProperties cfg.contents
    else if (cfg._type or "") == "if" then map (mapAttrs (_: mkIf cfg.condition)) (pushDownProperties cfg.content)
    else if (cfg._type or "") == "override" then
      map (mapAttrs (_: mkOverride cfg.priority)) (pushDownProperties cfg.content)
    else [ cfg ];

  # At an option: mkMerge becomes several definitions and mkIf false none.
  dischargeProperties = def:
    if (def._type or "") == "merge" then concatMap dischargeProperties def.contents
    else if (def._type or "") == "if" then
      if !isBool def.condition then throw "mkIf called with a non-Boolean condition"
      else if def.condition then dischargeProperties def.content
      else [ ]
    else [ def ];

  # Only the definitions of the highest priority (lowest number) count; mkOverride's wrapper is then removed.
  filterOverrides = defs:
    let
      priority = def: if (def.value._type or "") == "override" then def.value.priority else defaultOverridePriority;
      highest = foldl' (p: def: if priority def < p then priority def else p) 9999 defs;
      strip = def: if (def.value._type or "") == "override" then def // { value = def.value.content; } else def;
    in
    map strip (filter (def: priority def == highest) defs);

  mergeDefinitions = loc: type: defs:
    let
      discharged = concatMap (def: fromFileOf def (dischargeProperties def.value)) defs;
      final = filterOverrides discharged;
      wrong = filter (def: !type.check def.value) final;
      mergedValue =
        if wrong != [ ] then
          throw "A definition for option `${showOption loc}' is not of type `${type.description}'. Definition in ${files wrong}."
        else type.merge loc final;
    in
    {
      inherit mergedValue;
      isDefined = final != [ ];
      optionalValue = if final != [ ] then { value = mergedValue; } else { };
    };

  mergeEqualOption = loc: defs:
    if defs == [ ] then abort "This case should never happen."
    else (foldl'
      (first: def: if def.value != first.value
        then throw "The option `${showOption loc}' has conflicting definition values in ${files defs}."
        else first)
      (head defs)
      (tail defs)).value;

  mergeOneOption = loc: defs:
    if defs == [ ] then abort "This case should never happen."
    else if length defs == 1 then (head defs).value
    else throw
      "The option `${showOption loc}' is defined multiple times while it's expected to be unique, in ${files defs}.";

  mergeDefaultOption = loc: defs:
    let values = map (def: def.value) defs; in
    if length values == 1 then head values
    else if all isList values then builtins.concatLists values
    else if all isAttrs values then foldl' (a: b: a // b) { } values
    else if all isBool values then any (x: x) values
    else if all isString values then concatStringsSep "" values
    else if all isInt values && all (x: x == head values) values then head values
    else throw "Cannot merge definitions of `${showOption loc}'. Definition values in ${files defs}.";

  mkOptionType = { name, description ? name, check ? (_: true), merge ? mergeDefaultOption, ... }:
    { _type = "option-type"; inherit name description check merge; };

  mkOption = attrs: attrs // { _type = "option"; };
  mkEnableOption = name: mkOption {
    default = false;
    example = true;
    description = "Whether to enable ${name}.";
    type = types.bool;
  };
  mkIf = condition: content: { _type = "if"; inherit condition content; };
  mkMerge = contents: { _type = "merge"; inherit contents; };
  mkOverride = priority: content: { _type = "override"; inherit priority content; };
  mkOptionDefault = mkOverride 1500;
  mkDefault = mkOverride 1000;
  mkForce = mkOverride 50;

  types = rec {
    addCheck = elemType: check: elemType // { check = x: elemType.check x && check x; };
    unspecified = mkOptionType { name = "unspecified"; description = "unspecified value"; };
    bool = mkOptionType { name = "bool"; description = "boolean"; check = isBool; merge = mergeEqualOption; };
    str = mkOptionType { name = "str"; description = "string"; check = isString; merge = mergeEqualOption; };
    strMatching = pattern: mkOptionType {
      name = "strMatching ${pattern}";
      description = "string matching the pattern ${pattern}";
      check = x: str.check x && builtins.match pattern x != null;
      merge = mergeEqualOption;
    };
    int = mkOptionType { name = "int"; description = "signed integer"; check = isInt; merge = mergeEqualOption; };
    ints = rec {
      between = lowest: highest: addCheck int (x: x >= lowest && x <= highest) // {
        name = "intBetween";
        description = "integer between ${toString lowest} and ${toString highest} (both inclusive)";
      };
      u16 = between 0 65535 // {
        name = "unsignedInt16";
        description = "16 bit unsigned integer; between 0 and 65535 (both inclusive)";
      };
    };
    port = ints.u16;
    # nixpkgs also takes a store path string here; the stand-in takes derivations only.
    package = mkOptionType { name = "package"; check = isDerivation; merge = mergeOneOption; };
    nullOr = elemType: mkOptionType {
      name = "nullOr";
      description = "null or ${elemType.description}";
      check = x: x == null || elemType.check x;
      merge = loc: defs:
        let nulls = length (filter (def: def.value == null) defs); in
        if nulls == length defs then null
        else if nulls != 0 then
          throw "The option `${showOption loc}' is defined both null and not null, in ${files defs}."
        else elemType.merge loc defs;
    };
    listOf = elemType: mkOptionType {
      name = "listOf";
      description = "list of ${elemType.description}";
      check = isList;
      # Each entry is merged alone, so an entry of submodules is evaluated as one.
      merge = loc: defs:
        let
          entries = builtins.concatLists (builtins.genList
            (n:
              let def = builtins.elemAt defs n; in
              builtins.genList
                (m: (mergeDefinitions (loc ++ [ "[definition ${toString (n + 1)}-entry ${toString (m + 1)}]" ]) elemType
                  (fromFileOf def [ (builtins.elemAt def.value m) ])).optionalValue)
                (length def.value))
            (length defs));
        in
        map (entry: entry.value) (filter (entry: entry ? value) entries);
    };
    attrsOf = elemType: mkOptionType {
      name = "attrsOf";
      description = "attribute set of ${elemType.description}";
      check = isAttrs;
      merge = loc: defs: mapAttrs (_: v: v.value) (filterAttrs (_: v: v ? value) (builtins.zipAttrsWith
        (name: defs: (mergeDefinitions (loc ++ [ name ]) elemType defs).optionalValue)
        (map (def: mapAttrs (_: value: { inherit (def) file; inherit value; }) def.value) defs)));
    };
    # A definition is config only (nixpkgs' shorthandOnlyDefinesConfig); an element of attrsOf gets its name as `name`.
    submodule = modules: mkOptionType {
      name = "submodule";
      check = x: isAttrs x || isFunction x || isPath x;
      merge = loc: defs: (evalModules {
        modules = (if isList modules then modules else [ modules ]) ++ map
          (def: {
            _file = def.file;
            imports = [
              (if isFunction def.value then args: { config = def.value args; } else { config = def.value; })
            ];
          })
          defs;
        specialArgs = { name = last loc; };
        prefix = loc;
      }).config;
    };
  };

  # A module, its imports included, as { file, options, config } records.
  collectModules = file: args: module:
    let
      file' = if isPath module || isString module then toString module else file;
      value = if isPath module || isString module then import module else module;
      applied = if isFunction value then value args else value;
      explicit = applied ? config || applied ? options;
      extra = removeAttrs applied [ "_file" "key" "imports" "options" "config" ];
      unified =
        if explicit && extra != { } then
          throw ("Module `${file'}' has an unsupported attribute `${head (attrNames extra)}'. "
            + "Move it into the explicit `config' attribute.")
        else if explicit then { options = applied.options or { }; config = applied.config or { }; }
        else { options = { }; config = removeAttrs applied [ "_file" "key" "imports" ]; };
      here = applied._file or file';
    in
    [ (unified // { file = here; }) ] ++ concatMap (collectModules here args) (applied.imports or [ ]);

  # The options declared at `loc` by every module (decls), and the definitions for them (defs: { file, value } with
  # value a set of attributes): an option record with its value for each option, a set for each level below. A
  # definition no module declares is an error, as in nixpkgs.
  evalLevel = loc: decls: defs:
    let
      declared = unique (concatMap attrNames decls);
      undeclared = filter (def: any (name: !elem name declared) (attrNames def.value)) defs;
      below = name:
        let
          here = concatMap (decl: if decl ? ${name} then [ decl.${name} ] else [ ]) decls;
          defsHere = concatMap (def: if def.value ? ${name} then fromFileOf def [ def.value.${name} ] else [ ]) defs;
          loc' = loc ++ [ name ];
        in
        if all isOption here then
          if length here > 1 then throw "The option `${showOption loc'}' is declared more than once."
          else evalOption loc' (head here) defsHere
        else if any isOption here then
          throw "The option `${showOption loc'}' is declared both as an option and as a set of options."
        else evalLevel loc' here (concatMap (def: fromFileOf def (pushDownProperties def.value)) defsHere);
    in
    if undeclared != [ ] then
      let
        def = head undeclared;
        name = head (filter (name: !elem name declared) (attrNames def.value));
      in
      throw "The option `${showOption (loc ++ [ name ])}' does not exist. Definition in `${def.file}'."
    else genAttrs declared below;

  evalOption = loc: opt: defs:
    let
      type = opt.type or types.unspecified;
      default = { file = "the default of ${showOption loc}"; value = mkOptionDefault opt.default; };
      result = mergeDefinitions loc type (defs ++ (if opt ? default then [ default ] else [ ]));
    in
    opt // {
      inherit type;
      inherit (result) isDefined;
      value =
        if result.isDefined then result.mergedValue
        else throw "The option `${showOption loc}' is used but not defined.";
    };

  configOf = mapAttrs (_: node: if isOption node then node.value else configOf node);

  evalModules = { modules, specialArgs ? { }, prefix ? [ ] }:
    let
      args = { inherit lib config options; } // specialArgs;
      collected = concatMap (collectModules "<unknown-file>" args) modules;
      options = evalLevel prefix (map (m: m.options) collected)
        (concatMap (m: fromFileOf m (pushDownProperties m.config)) collected);
      config = configOf options;
    in
    { inherit options config; };
in
{
  inherit evalModules mkOption mkEnableOption mkOptionType mkIf mkMerge mkOverride mkOptionDefault mkDefault mkForce
    mergeEqualOption mergeOneOption mergeDefaultOption types;
}
