/* `loft plot RUN_DIR [--out FILE.svg]`: the loss curves of a training run (train/report.h). */
#include <stdio.h>

#include "cli/cli.h"
#include "train/report.h"

static lt_opt plot_opts[] = {
    {"out", "FILE.svg", "where the plot goes (default RUN_DIR/loss.svg)", NULL},
    {NULL, NULL, NULL, NULL},
};
static const lt_cmd_info plot_cmd = {"plot", "draw the train and eval loss curves of a run as an SVG",
                                     "RUN_DIR [--out FILE.svg]", plot_opts};

int lt_cmd_plot(int argc, char **argv) {
    const char *pos[1];
    int n_pos = 0;
    int rc = lt_args_parse(&plot_cmd, argc, argv, pos, 1, &n_pos);
    if (rc >= 0) return rc;
    if (n_pos != 1) {
        fprintf(stderr, "loft plot: expected a run directory; see 'loft plot --help'\n");
        return 2;
    }
    char out[4200];
    const char *o = lt_opt_get(&plot_cmd, "out");
    snprintf(out, sizeof out, "%s/loss.svg", pos[0]);
    lt_status st = lt_plot_run(pos[0], o ? o : out);
    if (st) return lt_cli_fail("plot", st);
    printf("wrote %s\n", o ? o : out);
    return 0;
}
