# A config that declares nothing to run: an agent on it would exit at once.
agent {
  name = "idle"
}
