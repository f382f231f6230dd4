"""Seeded, functional training: one model or a stack of models trained together with vmap."""
from .optim import build_optimizer
from .plan import TrainPlan, make_plan
from .trainer import Run, TrainResult, full_data_steps, train_models

__all__ = ["build_optimizer", "TrainPlan", "make_plan", "Run", "TrainResult", "full_data_steps", "train_models"]
