"""The deploy engine: stage config reading (flytoml) and, later, the roll-out itself."""

from bot.deploy.flytoml import (
    DeploySettings,
    FlyTomlError,
    StageConfig,
    load_stage_config,
    with_release,
)

__all__ = ["DeploySettings", "FlyTomlError", "StageConfig", "load_stage_config", "with_release"]
