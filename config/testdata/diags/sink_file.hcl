source "gadget" "exec" { gadget = "trace_exec" }

sink "file" "x" {
  format         = "xml"
  fsync          = "batch"
  fsync_interval = "1s"
  compress       = "zip"
  rotate { max_size = 0 }
  rotate {}
  retention { max_files = -1 }
}

sink "file" "y" {}

pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.file.x, sink.file.y]
}
