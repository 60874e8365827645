"""The only entry point to open_clip_train, also under torchrun at paper scale:

    python -m runners.openclip_main ARGS...                      # one process (proxy)
    torchrun --nproc_per_node 8 -m runners.openclip_main ARGS... # paper scale

It registers the repo's model configs, applies the compat fixes (webdataset end-of-shard marker;
NLTK offline syntax mask, which then also holds in forked DataLoader workers), and turns
open_clip_train's silent failures into exit codes: "Experiment already exists" returns -1 from
main() and would otherwise exit 0.
"""
from __future__ import annotations

import sys

EXISTS = 3  # exit status for "Experiment already exists" (open_clip_train prints it and returns -1)


def main(argv: list[str]) -> int:
    from open_clip_train import main as oc_main

    from runners import compat
    from runners.models import model_config, register_repo_configs

    register_repo_configs()
    model = argv[argv.index("--model") + 1] if "--model" in argv else None
    needs_syntax = bool(model) and (model_config(model)["text_cfg"].get("tokenizer_kwargs", {})
                                    .get("reduction_mask") == "syntax")
    try:
        compat.apply_all(syntax_mask=needs_syntax)
    except compat.MissingResource as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = oc_main.main(argv)
    if result == -1:
        print("error: open_clip_train refused to run: the experiment folder already exists "
              "(use --resume latest or a new --name)", file=sys.stderr)
        return EXISTS
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
