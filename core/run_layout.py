"""The layout of a run folder: every file name the pipeline reads or writes there, in one place.

Every module that touches a run folder takes its names from here, so that the layout below is
the whole truth (``tests/test_run_layout.py`` checks that no other module spells one of them).
Writers write whole files atomically; readers refuse a file that is not what it should be.

    RUN/                                  written by (read by)
      .elasticnas.lock                    any writing command: one writer at a time (core/locking.py)
      config.yaml                         train, import-ofa, elasticize (every later stage)
      checkpoint.pt                       train: weights + training state, resumable (every later stage)
      supernet.safetensors                import-ofa, elasticize: weights instead of checkpoint.pt
      elasticize.csv                      elasticize: what became elastic and what stayed fixed, and why
      divergences.json                    train: the divergences met and the fix each needs before resuming
      metrics.csv, training_curves.png    train, one row per epoch (report, quickstart)
      corpus.json                         train on text: the corpus's SHA-256 (train --resume checks it)
      tables/<device>_<runtime>/          profile, measure, search, export
        latency_table.csv                 the table, whole, with latency_table.json (its metadata);
                                          latency_table.partial.csv and latency_table.partial.json
                                          while it is built
        latency_check.csv                 profile --check: fresh subnets measured against the table
      tables/<device>_<runtime>_<phase>/  search: another phase's table (a language model's prefill),
                                          built when an objective or budget names it
      evaluations.csv                     measure: one measured subnet per row (fit, search, export)
      predictors/                         fit: accuracy.skops, latency.skops (search, export), reports.csv,
                                          held_out_predictions.csv, predictor_quality.png
      search/<name>/                      search: archive.csv, front.csv, history.csv, pareto.png,
                                          search.json, best_{metric}_{budget}.json per budget,
                                          settings.json, iterations.csv (the guided search),
                                          archive.journal.csv and measured.journal.csv while it runs
      summary.csv                         quickstart: one row per budget
      exports.csv                         quickstart, report: one row per export
      exports/slices/                     slices: slices.json (the measured sizes along the front) beside
                                          weights.safetensors (one weights file for all of them)
      exports/accuracy_checks.csv         export: subnets measured to choose an export, apart from the
                                          evaluations the predictors are fitted on
      exports/<name>/                     export: arch.json, weights.safetensors, model.pt2, model.onnx,
                                          report.json (last), candidates.csv; on request
                                          model.torchscript.pt, model.xml + model.bin (OpenVINO),
                                          model.pte (ExecuTorch); an int8 subnet's model.int8.onnx,
                                          model.int8.bin + model.int8.xml or model.int8.pte;
                                          finetune_checkpoint.pt while an export is fine-tuned;
                                          transformers/ (config.json, model.safetensors) where the
                                          family's subnet is also a transformers model
"""

LOCK = ".elasticnas.lock"
CONFIG = "config.yaml"
CHECKPOINT = "checkpoint.pt"
IMPORTED_WEIGHTS = "supernet.safetensors"
EXPLAIN_CSV = "elasticize.csv"
DIVERGENCES = "divergences.json"
METRICS = "metrics.csv"
TRAINING_CURVES = "training_curves.png"
CORPUS = "corpus.json"

TABLES = "tables"
TABLE_CSV, TABLE_JSON = "latency_table.csv", "latency_table.json"
PARTIAL_TABLE_CSV, PARTIAL_TABLE_JSON = "latency_table.partial.csv", "latency_table.partial.json"
LATENCY_CHECK = "latency_check.csv"

EVALUATIONS = "evaluations.csv"
PREDICTORS = "predictors"
ACCURACY_PREDICTOR, LATENCY_PREDICTOR = "accuracy.skops", "latency.skops"
PREDICTOR_REPORTS, HELD_OUT_PREDICTIONS = "reports.csv", "held_out_predictions.csv"
PREDICTOR_PLOT = "predictor_quality.png"

SEARCH = "search"
ARCHIVE, FRONT, PARETO_PLOT = "archive.csv", "front.csv", "pareto.png"
SEARCH_RESULT, SEARCH_HISTORY, GUIDED_ITERATIONS = "search.json", "history.csv", "iterations.csv"
BEST_UNDER_BUDGET = "best_{metric}_{budget}.json"  # str.format it; budget="*" globs them all
SEARCH_SETTINGS = "settings.json"
SEARCH_JOURNAL, MEASURED_JOURNAL = "archive.journal.csv", "measured.journal.csv"

EXPORTS = "exports"
EXPORTS_TABLE = "exports.csv"
SUMMARY = "summary.csv"
ACCURACY_CHECKS = "accuracy_checks.csv"
ARCH_JSON, WEIGHTS = "arch.json", "weights.safetensors"
PROGRAM, ONNX, TORCHSCRIPT = "model.pt2", "model.onnx", "model.torchscript.pt"
OPENVINO_FILES, EXECUTORCH_PROGRAM = ("model.xml", "model.bin"), "model.pte"
INT8_ONNX = "model.int8.onnx"
OPENVINO_INT8 = ("model.int8.bin", "model.int8.xml")  # weights first: an .xml is whole only with its .bin
EXECUTORCH_INT8 = ("model.int8.pte",)
REPORT = "report.json"  # an export's measured report, written last
SLICES, SLICES_JSON = "slices", "slices.json"  # a slice table's folder under exports/ and its table
# an export's copy in transformers' own layout (AutoModelForCausalLM.from_pretrained reads the folder)
TRANSFORMERS_FOLDER, TRANSFORMERS_CONFIG, TRANSFORMERS_WEIGHTS = "transformers", "config.json", "model.safetensors"
CANDIDATES = "candidates.csv"  # what an accuracy-checked export was chosen from
FINETUNE_CHECKPOINT = "finetune_checkpoint.pt"
