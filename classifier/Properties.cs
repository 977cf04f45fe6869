using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("faasmon")]
[assembly: InternalsVisibleTo("FaaSMon.Classifier.Tests")]
[assembly: InternalsVisibleTo("FaaSMon.Network.Tests")]
[assembly: InternalsVisibleTo("FaaSMon.Monitor.Tests")]
