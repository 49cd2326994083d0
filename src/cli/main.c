/* loft — entry point: dispatches to the subcommands. */
#include <stdio.h>
#include <string.h>

#include "backend/backend.h"
#include "cli/cli.h"

typedef struct lt_subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} lt_subcommand;

static const lt_subcommand lt_subcommands[] = {
    {"make-model", lt_cmd_make_model, "write an HF-format model directory with random weights"},
    {"inspect", lt_cmd_inspect, "list the tensors and metadata of a safetensors file or model directory"},
    {"logits", lt_cmd_logits, "run the forward pass and write the logits of every position"},
    {"generate", lt_cmd_generate, "generate text from a prompt, or chat, with a model (and its tokenizer)"},
    {"quantize", lt_cmd_quantize, "write a quantized copy of a model that loads by mmap (nf4, mxfp4, nvfp4, q8_0, ...)"},
    {"tokenize", lt_cmd_tokenize, "encode text to token ids or decode ids to text with a model's tokenizer"},
    {"template", lt_cmd_template, "render a conversation with a model's chat template (Jinja) and print the prompt"},
    {"train", lt_cmd_train, "fine-tune a LoRA adapter on a frozen (quantized) base, as a YAML recipe says"},
    {"eval", lt_cmd_eval, "exact-match accuracy of greedy answers on a chat dataset (with an adapter)"},
    {"export", lt_cmd_export, "write a training checkpoint's adapter in PEFT format"},
    {"merge", lt_cmd_merge, "fold an adapter into the (dequantized) base and write an HF model"},
    {"plot", lt_cmd_plot, "draw the loss curves of a training run (SVG)"},
};
#define LT_N_SUBCOMMANDS (sizeof lt_subcommands / sizeof lt_subcommands[0])

static void lt_usage(FILE *out) {
    fprintf(out, "loft %s — LoRA/QLoRA fine-tuning and adapter serving\n\nusage: loft <command> [options]\n\ncommands:\n",
            LT_VERSION_STRING);
    for (size_t i = 0; i < LT_N_SUBCOMMANDS; i++)
        fprintf(out, "  %-12s %s\n", lt_subcommands[i].name, lt_subcommands[i].summary);
    fprintf(out, "\n'loft <command> --help' describes a command's options; 'loft --version' shows the build.\n");
}

static int lt_version(void) {
    char desc[256];
    int n = lt_cuda_device_count(desc, sizeof desc);
    printf("loft %s\n", LT_VERSION_STRING);
    printf("cuda backend: %s\n", lt_cuda_built() ? "built" : "not built (nvcc was not found at build time)");
    if (lt_cuda_built()) printf("gpu: %s\n", n > 0 || desc[0] ? desc : "none visible");
    printf("cpu backend: OpenBLAS, %d threads (set LOFT_THREADS to change)\n", lt_threads_get());
    return 0;
}

int main(int argc, char **argv) {
    if (!lt_is_little_endian()) {
        fprintf(stderr, "loft: this machine is big-endian; loft's file formats assume little-endian\n");
        return 1;
    }
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        lt_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) return lt_version();
    for (size_t i = 0; i < LT_N_SUBCOMMANDS; i++)
        if (!strcmp(argv[1], lt_subcommands[i].name)) return lt_subcommands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "loft: unknown command '%s'\n\n", argv[1]);
    lt_usage(stderr);
    return 2;
}
