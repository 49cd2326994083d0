#!/usr/bin/env bash
# Reference test of the quantized path (--quant): see the "quant" mode of forward.sh.
exec bash "$(dirname "$0")/forward.sh" "$1" "$2" "$3" quant
