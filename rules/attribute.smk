# Stage 3: one job per (experiment, method) writes the folder results/{exp}/scores/{method}/ with
# every seed's scores (seed{r}.npy + .json sidecar; ensemble methods one seedall) and those of the
# other targets the experiment needs (tda_core/targets.py): val_seed{r} (validation loss, for
# pruning) and train_self_seed{r} (self-influence, for mislabel detection). One job, not one per
# seed: a job's fixed cost (importing torch, starting W&B) exceeds most small attributions.
#
# Curvature (if_kfac, if_ekfac, if_ensemble, dtda_if, the SOURCE family): one fit per experiment and key
# (tda_core.methods.registry.curvature_fit: kind, checkpoints, curvature options). A key that two or more
# methods read gets a fit_curvature job, which fits every seed into results/{exp}/curvature/{key}/; the
# attribute jobs of those methods take the folder as input and only read it (tda_core/stages/curvature.py).
# A key one method alone reads is fitted in that method's attribute job (one process start fewer).


rule fit_curvature:
    input:
        config=exp_paths("{exp}").config,
        models=lambda w: model_files(w.exp),
    output:
        directory(exp_paths("{exp}").curvature_dir("{curvature}")),
    params:
        fit=curvature_fit_spec,
    log:
        exp_paths("{exp}").log("fit_curvature_{curvature}"),
    conda:
        "../envs/tda.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=240,
    shell:
        "tda --log {log} --threads {threads} fit-curvature --exp-config {input.config} --fit {params.fit:q}"
        " --out {output}"


rule attribute:
    input:
        config=exp_paths("{exp}").config,
        models=lambda w: model_files(w.exp),
        curvature=curvature_inputs,
    output:
        directory(exp_paths("{exp}").score_dir("{method}")),
    params:
        seeds=lambda w: " ".join(map(str, score_seeds(w.exp, w.method))),
        targets=lambda w: " ".join(score_targets(w.exp, w.method)),
        options=lambda w: json.dumps(method_options(EXPERIMENTS[w.exp], w.method), sort_keys=True),
        self_examples=lambda w: experiment_block(EXPERIMENTS[w.exp], "mislabel")["max_examples"],
    log:
        exp_paths("{exp}").log("attribute_{method}"),
    conda:
        "../envs/tda.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=240,
    shell:
        "tda --log {log} --threads {threads} attribute --exp-config {input.config} --method {wildcards.method}"
        " --seed {params.seeds} --target {params.targets} --self-examples {params.self_examples}"
        " --options {params.options:q}"
