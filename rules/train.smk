# Stage 2: full-data models (R seeds, checkpoints) and the subset models of the ground truth
# (M subsets x seeds_per_subset, trained shard by shard; only their query measurements are kept).
# W&B tracking is no param here (nor in any rule): jobs read {results_dir}/.tracking.json, see the Snakefile.
# Paths: tda_core/layout.py (through exp_paths() of rules/common.smk).
# An experiment with groundtruth.from imports these files from a ground-truth bank instead
# (tda_core/gtbank.py): the train rules match only the experiments that train (TRAINED), the import
# rules only those that import (IMPORTED), so each file has one producer and the rules downstream
# are the same either way.


rule train_full:
    wildcard_constraints:
        exp=TRAINED,
    input:
        config=exp_paths("{exp}").config,
    output:
        exp_paths("{exp}").model("{seed}"),
    log:
        exp_paths("{exp}").log("train_seed{seed}"),
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
    wildcard_constraints:
        exp=TRAINED,
    input:
        config=exp_paths("{exp}").config,
        masks=exp_paths("{exp}").masks,
    output:
        exp_paths("{exp}").shard("{shard}"),
    params:
        # Not on the command line (the job derives them from the config): a rerun trigger, so shards
        # trained under another ground-truth seed protocol (tda_core/seeds.py) rerun.
        seeds=lambda w: groundtruth_seed_args(w.exp),
    log:
        exp_paths("{exp}").log("shard{shard}"),
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
    wildcard_constraints:
        exp=TRAINED,
    # groundtruth.track fixed_seed / both: each subset retrained from each full-data seed (same init and
    # batch order, removed examples zero-weighted).
    input:
        config=exp_paths("{exp}").config,
        masks=exp_paths("{exp}").masks,
    output:
        exp_paths("{exp}").fixed_shard("{shard}"),
    log:
        exp_paths("{exp}").log("fixed_shard{shard}"),
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
    wildcard_constraints:
        exp=TRAINED,
    input:
        config=exp_paths("{exp}").config,
        masks=exp_paths("{exp}").masks,
        shards=lambda w: shards(w.exp),
        models=lambda w: model_files(w.exp),
        fixed=lambda w: fixed_shards(w.exp),
    output:
        exp_paths("{exp}").groundtruth,
    log:
        exp_paths("{exp}").log("gather_groundtruth"),
    conda:
        "../envs/tda.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "tda --log {log} gather --exp-config {input.config} --masks {input.masks}"
        " --shards {input.shards} --models {input.models} --out {output} --fixed-shards {input.fixed}"


rule import_model:
    # A full-data checkpoint from the bank (sha256 checked; the bank's config hash must be the experiment's).
    wildcard_constraints:
        exp=IMPORTED,
    input:
        config=exp_paths("{exp}").config,
    output:
        exp_paths("{exp}").model("{seed}"),
    params:
        url=lambda w: bank_url(w.exp),
        member=lambda w: layout.model_member(w.seed),
    log:
        exp_paths("{exp}").log("import_seed{seed}"),
    conda:
        "../envs/tda.yaml"
    resources:
        mem_mb=1000,
        runtime=30,
    shell:
        "tda --log {log} groundtruth import --from {params.url:q} --exp-config {input.config}"
        " --member {params.member} --out {output}"


rule import_groundtruth:
    # The gathered measurements from the bank, whose masks must be the ones prepare wrote.
    wildcard_constraints:
        exp=IMPORTED,
    input:
        config=exp_paths("{exp}").config,
        masks=exp_paths("{exp}").masks,
    output:
        exp_paths("{exp}").groundtruth,
    params:
        url=lambda w: bank_url(w.exp),
        member=layout.BANK_MEASUREMENTS,
    log:
        exp_paths("{exp}").log("import_groundtruth"),
    conda:
        "../envs/tda.yaml"
    resources:
        mem_mb=1000,
        runtime=30,
    shell:
        "tda --log {log} groundtruth import --from {params.url:q} --exp-config {input.config}"
        " --masks {input.masks} --member {params.member} --out {output}"
