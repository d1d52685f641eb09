source "gadget" "exec" {
  gadget = "trace_exec"
  params = { ignore_failed = true
}
