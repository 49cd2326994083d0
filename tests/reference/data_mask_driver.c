/* data_mask_driver TOKENIZER_DIR DATA.jsonl [train_on_completions 0|1]: tokenizes a dataset as `loft train`
 * does (lt_dataset_load with the tokenizer's chat template) and prints, per example, one JSON object
 * {"ids": [...], "labels": [...]} (labels -100 where no loss) for tests/reference/data_mask.sh. */
#include <stdio.h>
#include <stdlib.h>

#include "tok/chat.h"
#include "tok/tok.h"
#include "train/data.h"

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    lt_tokenizer *tok = NULL;
    lt_chat_template *ct = NULL;
    lt_status st = lt_tok_load(argv[1], &tok);
    if (!st) st = lt_chat_template_load(argv[1], NULL, &ct);
    lt_dataset *ds = NULL;
    lt_data_report rep;
    char tj[4200];
    snprintf(tj, sizeof tj, "%s/tokenizer.json", argv[1]);
    lt_data_opts o = {.path = argv[2], .format = LT_DATA_AUTO, .tok = tok, .chat = ct, .tokenizer_json_path = tj,
                      .train_on_completions = argc > 3 ? atoi(argv[3]) != 0 : true, .max_seq_len = 4096,
                      .skip_bad_lines = false, .eos_id = lt_tok_get_specials(tok).eos_id};
    if (!st) st = lt_dataset_load(&o, &ds, &rep);
    if (st) {
        fprintf(stderr, "data_mask_driver: %s\n", lt_status_msg(st));
        return 1;
    }
    for (int64_t i = 0; i < lt_dataset_size(ds); i++) {
        const int32_t *ids, *lab;
        int64_t n;
        lt_dataset_get(ds, i, &ids, &lab, &n);
        printf("{\"ids\": [");
        for (int64_t t = 0; t < n; t++) printf("%s%d", t ? ", " : "", ids[t]);
        printf("], \"labels\": [");
        for (int64_t t = 0; t < n; t++) printf("%s%d", t ? ", " : "", lab[t]);
        printf("]}\n");
    }
    lt_dataset_free(ds);
    lt_chat_template_free(ct);
    lt_tok_free(tok);
    return 0;
}
