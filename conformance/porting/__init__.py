"""What a port from torch.optim.Adamax to mindspore.nn.AdaMax needs beyond the numbers: the optimizer
state carried across (`adamax_state.convert_state`, exported as `conformance.convert_state`)."""
