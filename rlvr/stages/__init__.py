"""Stage registry: stage type -> module with `main(ctx) -> StageResult`. One file per stage.

Modules are imported only when a stage of that type runs (they pull in torch and friends).
"""

STAGES = {
    "midtrain": "rlvr.stages.midtrain",
    "sft": "rlvr.stages.sft",
    "dpo": "rlvr.stages.dpo",
    "rlvr": "rlvr.stages.rlvr",
    "eval": "rlvr.stages.eval",
    "distill": "rlvr.stages.distill",
}
