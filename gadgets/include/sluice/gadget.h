/* SPDX-License-Identifier: Apache-2.0 */
/* One include for a gadget: kernel types, libbpf helpers and the contract. */
#ifndef __SLUICE_GADGET_H
#define __SLUICE_GADGET_H

#include <sluice/vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <sluice/macros.h>
#include <sluice/types.h>
#include <sluice/buffer.h>
#include <sluice/common.h>
#include <sluice/process.h>

#endif /* __SLUICE_GADGET_H */
