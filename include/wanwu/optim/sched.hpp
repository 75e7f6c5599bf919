// Learning-rate schedules, per-step equal to PyTorch 1.13's torch.optim.lr_scheduler, with
// per-group learning rates and state dicts. Include this one header; the pieces, in dependency
// order:
//   sched/scheduler.hpp   Schedule (what a training loop steps) and LRScheduler (PyTorch's base)
//   sched/basic.hpp       StepLR, MultiStepLR, CosineAnnealingLR, LinearLR
//   sched/sequential.hpp  SequentialLR, warmup_cosine()
//   sched/one_cycle.hpp   OneCycleLR (cycles SGD's momentum or Adam's beta1 too)
//   sched/plateau.hpp     ReduceLROnPlateau (steps on a metric)
// Typical fine-tuning use, stepping once per optimizer step:
//   auto sched = optim::warmup_cosine(opt, 500, total_steps);
//   for (...) { ...; opt.step(); sched.step(); }
#pragma once

#include "sched/scheduler.hpp"
#include "sched/basic.hpp"
#include "sched/sequential.hpp"
#include "sched/one_cycle.hpp"
#include "sched/plateau.hpp"
