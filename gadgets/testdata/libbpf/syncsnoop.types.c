// SPDX-License-Identifier: Apache-2.0
/*
 * The event type file a user makes for a syncsnoop built without DWARF:
 * its header compiled on its own, keeping the types nothing uses:
 *   clang -g -fno-eliminate-unused-debug-types -target bpf -c syncsnoop.types.c
 */
#include <linux/types.h>
#include "syncsnoop.h"
