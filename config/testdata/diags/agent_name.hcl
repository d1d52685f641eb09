# Agent names that would corrupt subjects, terminals and logs.
agent {
  name = "   "
}
