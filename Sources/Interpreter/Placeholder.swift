import BlockIR
