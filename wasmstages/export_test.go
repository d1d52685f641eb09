package wasmstages

// AsideMinSize lets the swap benchmark compile inline what would be
// compiled aside, to compare the two in one run.
var AsideMinSize = &asideMinSize

// AsideGrace lets a test raise the helper at once.
var AsideGrace = &asideGrace
