# Stage 2: full-data models (R seeds, checkpoints) and the subset models of the ground truth
# (M subsets x seeds_per_subset, trained shard by shard; only their query measurements are kept).
# W&B tracking is no param here (nor in any rule): jobs read {R}/.tracking.json, see the Snakefile.
from tda_core.config import n_shards  # torch-free: building the DAG imports no torch


rule train_full:
    input:
        config=f"{R}/{{exp}}/config.json",
    output:
        f"{R}/{{exp}}/models/seed{{seed}}.pt",
    log:
        f"{R}/logs/{{exp}}/train_seed{{seed}}.log",
    conda:
        "../envs/tda.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "tda --log {log} --threads {threads} train --exp-config {input.config} --seed {wildcards.seed}"
        " --out {output}"


rule train_shard:
    input:
        config=f"{R}/{{exp}}/config.json",
        masks=f"{R}/{{exp}}/groundtruth/masks.npy",
    output:
        f"{R}/{{exp}}/groundtruth/shard{{shard}}.npz",
    log:
        f"{R}/logs/{{exp}}/shard{{shard}}.log",
    conda:
        "../envs/tda.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    shell:
        "tda --log {log} --threads {threads} train-shard --exp-config {input.config} --shard {wildcards.shard}"
        " --masks {input.masks} --out {output}"


rule train_fixed_shard:
    # groundtruth.track fixed_seed / both: each subset retrained from each full-data seed (same init and
    # batch order, removed examples zero-weighted).
    input:
        config=f"{R}/{{exp}}/config.json",
        masks=f"{R}/{{exp}}/groundtruth/masks.npy",
    output:
        f"{R}/{{exp}}/groundtruth/fixed_shard{{shard}}.npz",
    log:
        f"{R}/logs/{{exp}}/fixed_shard{{shard}}.log",
    conda:
        "../envs/tda.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    shell:
        "tda --log {log} --threads {threads} train-shard --exp-config {input.config} --shard {wildcards.shard}"
        " --masks {input.masks} --out {output} --fixed"


rule gather_groundtruth:
    input:
        config=f"{R}/{{exp}}/config.json",
        masks=f"{R}/{{exp}}/groundtruth/masks.npy",
        shards=lambda w: expand(f"{R}/{w.exp}/groundtruth/shard{{k}}.npz",
                                k=range(n_shards(EXPERIMENTS[w.exp]["groundtruth"]))),
        models=lambda w: expand(f"{R}/{w.exp}/models/seed{{s}}.pt", s=full_seeds(w.exp)),
        fixed=lambda w: fixed_shards(w.exp),
    output:
        f"{R}/{{exp}}/groundtruth/measurements.npz",
    log:
        f"{R}/logs/{{exp}}/gather_groundtruth.log",
    conda:
        "../envs/tda.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "tda --log {log} gather --exp-config {input.config} --masks {input.masks}"
        " --shards {input.shards} --models {input.models} --out {output} --fixed-shards {input.fixed}"
