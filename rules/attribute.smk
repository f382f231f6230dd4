# Stage 4: one job per (experiment, method, seed); ensemble methods use seed 'all'.


rule attribute:
    input:
        config=f"{R}/{{exp}}/config.json",
        models=lambda w: expand(f"{R}/{w.exp}/models/seed{{s}}.pt",
                                s=full_seeds(w.exp) if w.seed == "all" else [w.seed]),
    output:
        f"{R}/{{exp}}/scores/{{method}}/seed{{seed}}.json",
    params:
        options=lambda w: json.dumps(method_options(EXPERIMENTS[w.exp], w.method)),
        tracking=TRACKING,
    log:
        f"{R}/logs/{{exp}}/attribute_{{method}}_seed{{seed}}.log",
    conda:
        "../envs/tda.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    shell:
        "tda --log {log} --threads {threads} attribute --exp-config {input.config} --method {wildcards.method}"
        " --seed {wildcards.seed} --options {params.options:q} --tracking {params.tracking:q} --out {output}"


# The same methods on other examples (tda_core/targets.py): `val` (validation loss, for pruning)
# and `train_self` (the training examples themselves, for self-influence / mislabel detection).


rule attribute_target:
    input:
        config=f"{R}/{{exp}}/config.json",
        models=lambda w: expand(f"{R}/{w.exp}/models/seed{{s}}.pt",
                                s=full_seeds(w.exp) if w.seed == "all" else [w.seed]),
    output:
        f"{R}/{{exp}}/scores/{{method}}/{{target}}_seed{{seed}}.json",
    wildcard_constraints:
        target="val|train_self",
    params:
        options=lambda w: json.dumps(method_options(EXPERIMENTS[w.exp], w.method)),
        self_examples=lambda w: (EXPERIMENTS[w.exp].get("mislabel") or {}).get("max_examples", 2000),
        tracking=TRACKING,
    log:
        f"{R}/logs/{{exp}}/attribute_{{method}}_{{target}}_seed{{seed}}.log",
    conda:
        "../envs/tda.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    shell:
        "tda --log {log} --threads {threads} attribute --exp-config {input.config} --method {wildcards.method}"
        " --seed {wildcards.seed} --target {wildcards.target} --self-examples {params.self_examples}"
        " --options {params.options:q} --tracking {params.tracking:q} --out {output}"
